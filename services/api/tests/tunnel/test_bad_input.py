"""Bad input on an open tunnel: each gets a clear ``error`` frame (the connection stays) or a close
code, and nothing reaches the database: the command rows are read back unchanged after each."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import asyncpg
import pytest
from tunnel_support import (
    Agent,
    Registered,
    command_rows,
    connected,
    enqueue,
    new_id,
    register_agent,
    served,
)

from botmox_protocol import (
    MAX_FRAME_BYTES,
    TRANSPORT_MAX_BYTES,
    CloseCode,
    CommandAckFrame,
    CommandProgressFrame,
    CommandResultFrame,
    ErrorCode,
    HelloFrame,
    WelcomeFrame,
)
from harness.postgres.migrated import PgDatabase


@dataclass
class Sent:
    """An agent holding one command it was sent (not acknowledged)."""

    agent: Agent
    registered: Registered
    command_id: str
    rows: list[asyncpg.Record]


@asynccontextmanager
async def holding_a_command(database: PgDatabase) -> AsyncIterator[Sent]:
    async with served(database) as api:
        registered = await register_agent(api, "tenant-a")
        async with connected(api, registered) as agent:
            command_id = (await enqueue(api, registered)).json()["data"]["id"]
            await agent.command()
            yield Sent(agent, registered, command_id, await command_rows(database))


async def _refused_and_nothing_stored(
    sent: Sent, database: PgDatabase, code: ErrorCode, ref: str | None
) -> None:
    error = await sent.agent.error()
    assert error.code == code
    assert error.ref == ref
    # The connection stays: a heartbeat is accepted and the row is as it was.
    await sent.agent.heartbeat()
    assert await command_rows(database) == sent.rows


@pytest.mark.parametrize(
    ("text", "code", "ref"),
    [
        ("{not json", ErrorCode.INVALID_JSON, None),
        ('{"v": 1, "type": "heartbeat", "id": "h1", "id": "h2"}', ErrorCode.INVALID_JSON, None),
        ('["a list"]', ErrorCode.INVALID_FRAME, None),
        ('{"v": 2, "type": "heartbeat", "id": "h1"}', ErrorCode.UNSUPPORTED_VERSION, "h1"),
        ('{"v": 1, "type": "ping", "id": "h1"}', ErrorCode.UNKNOWN_TYPE, "h1"),
        ('{"v": 1, "type": "heartbeat", "id": "h1", "extra": 0}', ErrorCode.INVALID_FRAME, "h1"),
    ],
    ids=["not-json", "repeated-key", "not-an-object", "version", "unknown-type", "extra-member"],
)
async def test_malformed_frames_get_an_error_frame(
    pg_database: PgDatabase, text: str, code: ErrorCode, ref: str | None
) -> None:
    async with holding_a_command(pg_database) as sent:
        await sent.agent.send_raw(text)
        await _refused_and_nothing_stored(sent, pg_database, code, ref)


async def test_a_result_with_a_wrong_shape_is_refused_and_not_stored(pg_database: PgDatabase) -> None:
    async with holding_a_command(pg_database) as sent:
        frame = {
            "v": 1,
            "id": "r1",
            "type": "command.result",
            "command_id": sent.command_id,
            "ok": True,
            "data": None,
            "error": {"code": "X", "message": "both"},
        }
        await sent.agent.send_raw(json.dumps(frame))
        await _refused_and_nothing_stored(sent, pg_database, ErrorCode.INVALID_FRAME, "r1")


async def test_a_frame_over_max_frame_bytes_gets_frame_too_large(pg_database: PgDatabase) -> None:
    async with holding_a_command(pg_database) as sent:
        await sent.agent.send_raw(" " * (MAX_FRAME_BYTES + 1))
        await _refused_and_nothing_stored(sent, pg_database, ErrorCode.FRAME_TOO_LARGE, None)


async def test_a_message_over_the_transport_limit_closes_with_1009(pg_database: PgDatabase) -> None:
    async with holding_a_command(pg_database) as sent:
        await sent.agent.send_raw("x" * (TRANSPORT_MAX_BYTES + 1))
        code, _ = await sent.agent.closed_with()
        assert code == CloseCode.MESSAGE_TOO_BIG
        assert await command_rows(pg_database) == sent.rows


async def test_a_second_hello_is_out_of_order(pg_database: PgDatabase) -> None:
    async with holding_a_command(pg_database) as sent:
        hello = HelloFrame(
            id=new_id(), agent_id=sent.registered.agent_id, agent_version="9.9.9", capabilities=()
        )
        await sent.agent.send(hello)
        await _refused_and_nothing_stored(sent, pg_database, ErrorCode.OUT_OF_ORDER, hello.id)


async def test_a_server_frame_from_the_agent_is_out_of_order(pg_database: PgDatabase) -> None:
    async with holding_a_command(pg_database) as sent:
        welcome = WelcomeFrame(
            id=new_id(),
            protocol_version=1,
            server_time="2026-12-06T08:00:00Z",  # type: ignore[arg-type]
            heartbeat_interval_s=15,
            heartbeat_timeout_s=45,
            limits={"max_frame_bytes": 1024, "max_in_flight_commands": 1},  # type: ignore[arg-type]
        )
        await sent.agent.send(welcome)
        await _refused_and_nothing_stored(sent, pg_database, ErrorCode.OUT_OF_ORDER, welcome.id)


async def test_progress_or_a_result_before_the_ack_is_out_of_order(pg_database: PgDatabase) -> None:
    async with holding_a_command(pg_database) as sent:
        progress = CommandProgressFrame(id=new_id(), command_id=sent.command_id, percent=1, message=None)
        await sent.agent.send(progress)
        await _refused_and_nothing_stored(sent, pg_database, ErrorCode.OUT_OF_ORDER, progress.id)
        result = CommandResultFrame(id=new_id(), command_id=sent.command_id, ok=True, data=1)
        await sent.agent.send(result)
        await _refused_and_nothing_stored(sent, pg_database, ErrorCode.OUT_OF_ORDER, result.id)


@pytest.mark.parametrize("frame_type", ["ack", "progress", "result"])
async def test_frames_about_a_command_never_sent_on_this_connection_are_unknown_command(
    pg_database: PgDatabase, frame_type: str
) -> None:
    async with served(pg_database) as api:
        registered = await register_agent(api, "tenant-a")
        other = await register_agent(api, "tenant-a")
        async with connected(api, registered) as agent, connected(api, other) as other_agent:
            # A real command, of another agent of the same tenant (sent to it), and one that exists nowhere.
            others = (await enqueue(api, other)).json()["data"]["id"]
            await other_agent.command()
            rows = await command_rows(pg_database)
            for command_id in (others, str(uuid.uuid4())):
                frame: CommandAckFrame | CommandProgressFrame | CommandResultFrame
                if frame_type == "ack":
                    frame = CommandAckFrame(id=new_id(), command_id=command_id)
                elif frame_type == "progress":
                    frame = CommandProgressFrame(id=new_id(), command_id=command_id, percent=5, message=None)
                else:
                    frame = CommandResultFrame(id=new_id(), command_id=command_id, ok=True, data={"x": 1})
                await agent.send(frame)
                error = await agent.error()
                assert (error.code, error.ref) == (ErrorCode.UNKNOWN_COMMAND, frame.id)
            await agent.heartbeat()
            assert await command_rows(pg_database) == rows
