"""The handshake of ``GET /api/v1/agents/ws``: who gets a session, and the close code of everyone
else (``docs/agent-protocol.md``, close codes): no user token is needed, the agent's credential is."""

from __future__ import annotations

import uuid

import pytest
from tunnel_support import (
    CAPABILITIES,
    admin,
    agent_connection,
    command_rows,
    new_id,
    register_agent,
    served,
)

from botmox_protocol import CloseCode, ErrorCode, HeartbeatFrame, HelloFrame, WelcomeFrame
from harness.postgres.migrated import PgDatabase


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"X-Botmox-Agent-Id": "6f1c2a9e-3b7d-4e8a-9c0f-1d2e3f4a5b6c"},
        {"Authorization": "Bearer some-credential"},
        {
            "Authorization": "Basic some-credential",
            "X-Botmox-Agent-Id": "6f1c2a9e-3b7d-4e8a-9c0f-1d2e3f4a5b6c",
        },
        {"Authorization": "Bearer some-credential", "X-Botmox-Agent-Id": "not-a-uuid"},
    ],
    ids=["nothing", "no-credential", "no-agent-id", "not-bearer", "agent-id-not-a-uuid"],
)
async def test_missing_or_malformed_headers_close_with_4401_before_any_frame(
    pg_database: PgDatabase, headers: dict[str, str]
) -> None:
    async with served(pg_database) as api, agent_connection(api, headers, "x") as connection:
        code, frames = await connection.closed_with()
        assert code == CloseCode.BAD_CREDENTIAL
        assert frames == []


async def test_a_wrong_credential_closes_with_4401_and_no_welcome(pg_database: PgDatabase) -> None:
    async with served(pg_database) as api:
        agent = await register_agent(api, "tenant-a")
        headers = {**agent.headers(), "Authorization": "Bearer not-the-credential"}
        async with agent_connection(api, headers, agent.agent_id) as connection:
            await connection.send(
                HelloFrame(
                    id=new_id(), agent_id=agent.agent_id, agent_version="1.0.0", capabilities=CAPABILITIES
                )
            )
            code, frames = await connection.closed_with()
            assert code == CloseCode.BAD_CREDENTIAL
            assert frames == []
        listed = await api.http.get("/api/v1/agents", headers=admin("tenant-a"))
        assert listed.json()["data"][0]["last_seen_at"] is None


async def test_a_hello_naming_another_agent_closes_with_4400(pg_database: PgDatabase) -> None:
    async with served(pg_database) as api:
        agent = await register_agent(api, "tenant-a")
        async with agent_connection(api, agent.headers(), agent.agent_id) as connection:
            other = str(uuid.uuid4())
            await connection.send(
                HelloFrame(id=new_id(), agent_id=other, agent_version="1.0.0", capabilities=CAPABILITIES)
            )
            code, frames = await connection.closed_with()
            assert code == CloseCode.PROTOCOL_VIOLATION
            [error] = frames
            assert error.type == "error"
            assert error.code == ErrorCode.OUT_OF_ORDER


async def test_a_first_frame_other_than_hello_closes_with_4400(pg_database: PgDatabase) -> None:
    async with served(pg_database) as api:
        agent = await register_agent(api, "tenant-a")
        async with agent_connection(api, agent.headers(), agent.agent_id) as connection:
            heartbeat = HeartbeatFrame(id=new_id())
            await connection.send(heartbeat)
            code, frames = await connection.closed_with()
            assert code == CloseCode.PROTOCOL_VIOLATION
            [error] = frames
            assert error.type == "error"
            assert error.code == ErrorCode.OUT_OF_ORDER
            assert error.ref == heartbeat.id
        assert await command_rows(pg_database) == []


async def test_no_hello_within_the_heartbeat_timeout_closes_with_4408(pg_database: PgDatabase) -> None:
    async with served(pg_database, agent_heartbeat_interval_s=1, agent_heartbeat_timeout_s=2) as api:
        agent = await register_agent(api, "tenant-a")
        async with agent_connection(api, agent.headers(), agent.agent_id) as connection:
            code, frames = await connection.closed_with()
            assert code == CloseCode.HEARTBEAT_TIMEOUT
            assert frames == []


async def test_a_newer_agent_declaring_unknown_kinds_is_welcomed_with_the_known_ones(
    pg_database: PgDatabase,
) -> None:
    async with served(pg_database) as api:
        agent = await register_agent(api, "tenant-a")
        async with agent_connection(api, agent.headers(), agent.agent_id) as connection:
            await connection.send(
                HelloFrame(
                    id=new_id(),
                    agent_id=agent.agent_id,
                    agent_version="2.0.0",
                    capabilities=("syncthing.status", "docker.container.start"),
                )
            )
            await connection.expect(WelcomeFrame)
            listed = await api.http.get("/api/v1/agents", headers=admin("tenant-a"))
            assert listed.json()["data"][0]["capabilities"] == ["syncthing.status"]


async def test_without_supabase_every_connection_closes_with_1011() -> None:
    headers = {"Authorization": "Bearer c", "X-Botmox-Agent-Id": str(uuid.uuid4())}
    async with served(None) as api, agent_connection(api, headers, "x") as connection:
        code, _ = await connection.closed_with()
        assert code == CloseCode.INTERNAL_ERROR
