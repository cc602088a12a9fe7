"""Delivery across API instances through PostgreSQL's LISTEN/NOTIFY, and the listening session's
recovery: two API servers on one database, the agent connected to one, the command and the
revocation sent through the other; a listening session killed by the server is reopened and the
commands queued meanwhile are delivered."""

from __future__ import annotations

import asyncio

import asyncpg
from tunnel_support import (
    WAIT_S,
    admin,
    connected,
    enqueue,
    new_id,
    register_agent,
    served,
    until_status,
)

from botmox_protocol import CloseCode, CommandAckFrame, CommandResultFrame
from harness.postgres.migrated import PgDatabase


async def test_a_command_enqueued_through_one_instance_reaches_the_agent_on_another(
    pg_database: PgDatabase,
) -> None:
    async with served(pg_database) as api_a, served(pg_database) as api_b:
        agent = await register_agent(api_a, "tenant-a")
        async with connected(api_b, agent) as connection:
            queued = await enqueue(api_a, agent)
            assert queued.status_code == 201, queued.text
            command_id = queued.json()["data"]["id"]
            assert (await connection.command()).command_id == command_id
            await connection.send(CommandAckFrame(id=new_id(), command_id=command_id))
            await connection.send(CommandResultFrame(id=new_id(), command_id=command_id, ok=True, data=[1]))
            stored = await until_status(api_a, agent, command_id, "succeeded")
            assert stored["result"] == [1]
            assert stored["deliveries"] == 1  # instance A, holding no tunnel of this agent, sent nothing


async def test_a_revocation_through_one_instance_closes_the_tunnel_on_another(
    pg_database: PgDatabase,
) -> None:
    async with served(pg_database) as api_a, served(pg_database) as api_b:
        agent = await register_agent(api_a, "tenant-a")
        async with connected(api_b, agent) as connection:
            revoked = await api_a.http.post(
                f"/api/v1/agents/{agent.agent_id}/revoke", headers=admin("tenant-a")
            )
            assert revoked.status_code == 200
            code, _ = await connection.closed_with(within_s=1.0)
            assert code == CloseCode.REVOKED


async def test_an_agent_reconnecting_through_another_instance_closes_the_old_tunnel_at_its_heartbeat(
    pg_database: PgDatabase,
) -> None:
    async with served(pg_database) as api_a, served(pg_database) as api_b:
        agent = await register_agent(api_a, "tenant-a")
        async with connected(api_a, agent) as old, connected(api_b, agent) as new:
            await old.heartbeat()
            code, _ = await old.closed_with()
            assert code == CloseCode.REPLACED
            command_id = (await enqueue(api_a, agent)).json()["data"]["id"]
            assert (await new.command()).command_id == command_id


async def test_a_lost_listening_session_is_reopened_and_commands_still_delivered(
    pg_database: PgDatabase,
) -> None:
    async with served(pg_database) as api:
        agent = await register_agent(api, "tenant-a")
        listener = api.app.state.tunnel.listener
        assert listener.sessions == 1
        async with connected(api, agent) as connection:
            admin_conn = await asyncpg.connect(pg_database.admin_dsn)
            try:
                terminated = await admin_conn.fetchval(
                    "select count(pg_terminate_backend(pid)) from pg_stat_activity"
                    " where datname = current_database() and application_name = 'botmox-api-listener'"
                )
            finally:
                await admin_conn.close()
            assert terminated == 1
            # Queued while nobody listens, or just after the session was reopened: the notification
            # reaches the new session, or the re-read after reopening finds the command.
            command_id = (await enqueue(api, agent)).json()["data"]["id"]
            assert (await connection.command()).command_id == command_id
            async with asyncio.timeout(WAIT_S):
                while True:  # the listener's own count, raised by its task when it listens again
                    if listener.sessions == 2 and listener.listening.is_set():
                        break
                    await asyncio.sleep(0.02)
