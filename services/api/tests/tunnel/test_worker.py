"""A worker's tunnel stopping with the server: open tunnels are closed with a code the agent
reconnects after (uvicorn's own 1012 on shutdown, or the lifespan's 1001 for any left), and each
agent is marked disconnected before the worker's database pool closes."""

from __future__ import annotations

from contextlib import AsyncExitStack

import asyncpg
from tunnel_support import admin, connected, register_agent, served

from botmox_protocol import CloseCode, should_reconnect
from harness.postgres.migrated import PgDatabase

SERVICE_RESTART = 1012


async def test_a_clean_shutdown_closes_tunnels_and_marks_their_agents_disconnected(
    pg_database: PgDatabase,
) -> None:
    async with AsyncExitStack() as agents:
        async with served(pg_database) as api:
            agent = await register_agent(api, "tenant-a")
            connection = await agents.enter_async_context(connected(api, agent))
        code, _ = await connection.closed_with()
        assert code in (CloseCode.GOING_AWAY, SERVICE_RESTART)
        assert code is not None
        assert should_reconnect(code)
    conn = await asyncpg.connect(pg_database.admin_dsn)
    try:
        row = await conn.fetchrow("select connection_id, last_seen_at from public.agents")
    finally:
        await conn.close()
    assert row is not None
    assert row["connection_id"] is None
    assert row["last_seen_at"] is not None


async def test_tunnels_left_at_the_lifespans_end_are_closed_with_1001_and_marked_disconnected(
    pg_database: PgDatabase,
) -> None:
    async with served(pg_database) as api:
        agent = await register_agent(api, "tenant-a")
        async with connected(api, agent) as connection:
            # What the lifespan does for tunnels uvicorn did not close itself.
            await api.app.state.tunnel.hub.aclose()
            code, _ = await connection.closed_with()
            assert code == CloseCode.GOING_AWAY
            listed = await api.http.get("/api/v1/agents", headers=admin("tenant-a"))
            assert listed.json()["data"][0]["online"] is False
