"""One agent's tunnel end to end: the real API under uvicorn on 127.0.0.1 over PostgreSQL, and an
agent speaking frames through the ``websockets`` client: handshake, commands delivered and their
ack, progress and result stored once, re-sends after a reconnect, heartbeats and their timeout,
replaced connections."""

from __future__ import annotations

import asyncio

import pytest
from tunnel_support import (
    CAPABILITIES,
    agent_connection,
    command_rows,
    connected,
    enqueue,
    member,
    new_id,
    read_command,
    register_agent,
    served,
    until_status,
)

from botmox_protocol import (
    CloseCode,
    CommandAckFrame,
    CommandError,
    CommandProgressFrame,
    CommandResultFrame,
)
from harness.postgres.migrated import PgDatabase


async def test_hello_opens_the_session_and_the_agent_is_online(pg_database: PgDatabase) -> None:
    async with served(pg_database) as api:
        agent = await register_agent(api, "tenant-a")
        async with agent_connection(api, agent.headers(), agent.agent_id) as connection:
            welcome = await connection.hello()
            assert welcome.heartbeat_interval_s == 15
            assert welcome.heartbeat_timeout_s == 45
            listed = await api.http.get("/api/v1/agents", headers=member("tenant-a"))
            [entry] = listed.json()["data"]
            assert entry["online"] is True
            assert entry["version"] == "1.0.1"
            assert entry["capabilities"] == list(CAPABILITIES)


async def test_a_command_reaches_the_agent_and_its_outcome_is_stored_once(pg_database: PgDatabase) -> None:
    async with served(pg_database) as api:
        agent = await register_agent(api, "tenant-a")
        async with connected(api, agent) as connection:
            queued = await enqueue(api, agent)
            assert queued.status_code == 201, queued.text
            command_id = queued.json()["data"]["id"]
            command = await connection.command()
            assert command.command_id == command_id
            assert command.kind == "syncthing.status"
            assert (await read_command(api, agent, command_id))["status"] == "sent"
            await connection.send(CommandAckFrame(id=new_id(), command_id=command_id))
            await connection.send(
                CommandProgressFrame(id=new_id(), command_id=command_id, percent=50, message="halfway")
            )
            result = CommandResultFrame(id=new_id(), command_id=command_id, ok=True, data={"up": True})
            await connection.send(result)
            # The same result again (a replay): ignored, not stored twice, not refused.
            await connection.send(result.model_copy(update={"id": new_id()}))
            await connection.heartbeat()
            stored = await until_status(api, agent, command_id, "succeeded")
            assert stored["result"] == {"up": True}
            assert stored["progress"] == {"percent": 50, "message": "halfway"}
            assert stored["deliveries"] == 1
        [row] = await command_rows(pg_database)
        assert row["status"] == "succeeded"


async def test_a_failed_result_is_stored_with_its_error(pg_database: PgDatabase) -> None:
    async with served(pg_database) as api:
        agent = await register_agent(api, "tenant-a")
        async with connected(api, agent) as connection:
            command_id = (await enqueue(api, agent)).json()["data"]["id"]
            await connection.command()
            await connection.send(CommandAckFrame(id=new_id(), command_id=command_id))
            await connection.send(
                CommandResultFrame(
                    id=new_id(),
                    command_id=command_id,
                    ok=False,
                    error=CommandError(code="SYNCTHING_UNREACHABLE", message="connection refused"),
                )
            )
            stored = await until_status(api, agent, command_id, "failed")
            assert stored["error"] == {"code": "SYNCTHING_UNREACHABLE", "message": "connection refused"}


async def test_an_unacknowledged_command_is_sent_again_after_a_reconnect(pg_database: PgDatabase) -> None:
    async with served(pg_database) as api:
        agent = await register_agent(api, "tenant-a")
        async with connected(api, agent) as connection:
            command_id = (await enqueue(api, agent)).json()["data"]["id"]
            first = await connection.command()
        # Gone without an ack; the next connection gets the same command again.
        async with connected(api, agent) as connection:
            again = await connection.command()
            assert again.command_id == first.command_id == command_id
            assert again.id != first.id
            await connection.send(CommandAckFrame(id=new_id(), command_id=command_id))
            await connection.send(CommandResultFrame(id=new_id(), command_id=command_id, ok=True, data=None))
            stored = await until_status(api, agent, command_id, "succeeded")
            assert stored["deliveries"] == 2


async def test_an_acknowledged_command_without_result_is_sent_again_and_its_result_stored_once(
    pg_database: PgDatabase,
) -> None:
    async with served(pg_database) as api:
        agent = await register_agent(api, "tenant-a")
        async with connected(api, agent) as connection:
            command_id = (await enqueue(api, agent)).json()["data"]["id"]
            await connection.command()
            await connection.send(CommandAckFrame(id=new_id(), command_id=command_id))
            await connection.send(CommandProgressFrame(id=new_id(), command_id=command_id, percent=40))
            await until_status(api, agent, command_id, "running")
        # The result was lost with the connection: the next one gets the command again (rule 5), the
        # agent answers from its journal with an ack (not stored again, not refused) and the result.
        async with connected(api, agent) as connection:
            again = await connection.command()
            assert again.command_id == command_id
            await connection.send(CommandAckFrame(id=new_id(), command_id=command_id))
            await connection.send(
                CommandResultFrame(id=new_id(), command_id=command_id, ok=True, data={"from": "journal"})
            )
            await connection.heartbeat()
            stored = await until_status(api, agent, command_id, "succeeded")
            assert stored["result"] == {"from": "journal"}
            assert stored["progress"] == {"percent": 40, "message": None}
            assert stored["deliveries"] == 2
            with pytest.raises(TimeoutError):
                await connection.receive(within_s=0.5)  # no error frame about the second ack
        [row] = await command_rows(pg_database)
        assert row["status"] == "succeeded"


async def test_no_heartbeat_within_the_timeout_closes_with_4408(pg_database: PgDatabase) -> None:
    async with served(pg_database, agent_heartbeat_interval_s=1, agent_heartbeat_timeout_s=2) as api:
        agent = await register_agent(api, "tenant-a")
        async with connected(api, agent) as connection:
            code, _ = await connection.closed_with()
            assert code == CloseCode.HEARTBEAT_TIMEOUT


async def test_heartbeats_keep_the_session_open(pg_database: PgDatabase) -> None:
    async with served(pg_database, agent_heartbeat_interval_s=1, agent_heartbeat_timeout_s=2) as api:
        agent = await register_agent(api, "tenant-a")
        async with connected(api, agent) as connection:
            for _ in range(4):
                await connection.heartbeat()
                await asyncio.sleep(1)
            command_id = (await enqueue(api, agent)).json()["data"]["id"]
            assert (await connection.command()).command_id == command_id


async def test_a_second_connection_of_the_agent_replaces_the_first_with_4409(pg_database: PgDatabase) -> None:
    async with served(pg_database) as api:
        agent = await register_agent(api, "tenant-a")
        async with connected(api, agent) as first, connected(api, agent) as second:
            code, _ = await first.closed_with()
            assert code == CloseCode.REPLACED
            command_id = (await enqueue(api, agent)).json()["data"]["id"]
            assert (await second.command()).command_id == command_id


async def test_at_most_max_in_flight_commands_are_sent_and_the_rest_follow_results(
    pg_database: PgDatabase,
) -> None:
    async with served(pg_database) as api:
        agent = await register_agent(api, "tenant-a")
        async with connected(api, agent) as connection:
            limit = 32  # the welcome's limits.max_in_flight_commands
            queued = [(await enqueue(api, agent)).json()["data"]["id"] for _ in range(limit + 1)]
            received = [(await connection.command()).command_id for _ in range(limit)]
            assert received == queued[:limit]
            with pytest.raises(TimeoutError):
                await connection.receive(within_s=0.5)
            first = received[0]
            await connection.send(CommandAckFrame(id=new_id(), command_id=first))
            await connection.send(CommandResultFrame(id=new_id(), command_id=first, ok=True, data=None))
            assert (await connection.command()).command_id == queued[limit]
