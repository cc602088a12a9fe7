"""The simulated agent and its fleet against a toy tunnel server built from the protocol package's
``ServerSession`` (no stack): the handshake headers, hello/welcome, heartbeats, a command answered
once, its re-send after a dropped connection answered from the journal, a final close obeyed."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from websockets.asyncio.server import ServerConnection, serve

from botmox_protocol import (
    CloseCode,
    CommandResultFrame,
    ServerSession,
    SessionTerms,
    encode_frame,
    parse_frame,
)
from harness.fixtures.agent_fleet import Fleet
from harness.fixtures.agents_api import RegisteredAgent
from harness.fixtures.simulated_agent import AGENT_ID_HEADER, SimulatedAgent


@dataclass
class ToyTunnel:
    """Welcomes agents, sends each the commands queued for it (again on every connection until a
    result came) and keeps the results; ``close_with`` closes the next connections with that code."""

    credentials: dict[str, str]
    queued: dict[str, list[str]] = field(default_factory=dict)
    results: dict[str, list[CommandResultFrame]] = field(default_factory=dict)
    connections: dict[str, list[ServerConnection]] = field(default_factory=dict)
    heartbeats: int = 0
    close_with: int | None = None
    port: int = 0

    async def handle(self, connection: ServerConnection) -> None:
        request = connection.request
        assert request is not None
        agent_id = request.headers.get(AGENT_ID_HEADER, "")
        if request.headers.get("Authorization") != f"Bearer {self.credentials.get(agent_id)}":
            await connection.close(CloseCode.BAD_CREDENTIAL)
            return
        if self.close_with is not None:
            await connection.close(self.close_with)
            return
        self.connections.setdefault(agent_id, []).append(connection)
        session = ServerSession(
            agent_id=agent_id, terms=SessionTerms(heartbeat_interval_s=1, heartbeat_timeout_s=5)
        )
        async for message in connection:
            reaction = session.receive(parse_frame(message))
            for frame in reaction.send:
                await connection.send(encode_frame(frame))
            accepted = reaction.accepted
            if accepted is not None and accepted.type == "hello":
                deadline = datetime.now(UTC) + timedelta(minutes=5)
                for command_id in self.queued.get(agent_id, []):
                    if command_id not in self.results:
                        frame = session.send_command(
                            command_id=command_id, kind="syncthing.status", params={}, deadline=deadline
                        )
                        await connection.send(encode_frame(frame))
            elif isinstance(accepted, CommandResultFrame):
                self.results.setdefault(accepted.command_id, []).append(accepted)
            elif accepted is not None and accepted.type == "heartbeat":
                self.heartbeats += 1

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def _identity(index: int) -> RegisteredAgent:
    return RegisteredAgent(
        str(uuid.uuid4()), "fleet", f"credential-{index}-{uuid.uuid4().hex}", f"sim-{index}"
    )


@pytest.fixture
async def toy() -> AsyncIterator[ToyTunnel]:
    tunnel = ToyTunnel(credentials={})
    async with serve(tunnel.handle, "127.0.0.1", 0) as server:
        tunnel.port = next(iter(server.sockets)).getsockname()[1]
        yield tunnel


async def _until(condition: Callable[[], bool], timeout_s: float = 10.0) -> None:
    """Poll a condition the toy server's handlers change (they signal nothing)."""
    async with asyncio.timeout(timeout_s):
        while not condition():  # noqa: ASYNC110 - the state is plain attributes, not an event
            await asyncio.sleep(0.02)


async def test_a_command_runs_once_across_a_dropped_connection(toy: ToyTunnel) -> None:
    identity = _identity(0)
    toy.credentials[identity.agent_id] = identity.credential
    command_id = str(uuid.uuid4())
    toy.queued[identity.agent_id] = [command_id]
    agent = SimulatedAgent(identity, toy.url)
    stop = asyncio.Event()
    running = asyncio.create_task(agent.run(stop))
    await _until(lambda: command_id in toy.results)
    # The server forgets the result it got (as if the API died before storing it) and the link drops.
    toy.results.clear()
    toy.connections[identity.agent_id][-1].transport.abort()
    await _until(lambda: command_id in toy.results and len(agent.stats.welcomes) == 2)
    await _until(lambda: toy.heartbeats >= 1, timeout_s=5)
    stop.set()
    await asyncio.wait_for(running, 10)
    assert agent.stats.runs[command_id] == 1
    assert [frame.ok for frame in toy.results[command_id]] == [True]
    assert toy.results[command_id][0].data == {"simulated": "syncthing.status"}
    assert len(agent.stats.disconnects) == 2


@pytest.mark.parametrize("code", [CloseCode.REVOKED, CloseCode.BAD_CREDENTIAL])
async def test_a_final_close_ends_the_agent(toy: ToyTunnel, code: CloseCode) -> None:
    identity = _identity(1)
    toy.credentials[identity.agent_id] = identity.credential
    toy.close_with = code
    agent = SimulatedAgent(identity, toy.url)
    await asyncio.wait_for(agent.run(asyncio.Event()), 10)
    assert agent.stats.final_close == code
    assert agent.stats.attempts == 1


async def test_a_fleet_in_two_processes_connects_and_reports(toy: ToyTunnel, tmp_path: Path) -> None:
    identities = [_identity(index) for index in range(6)]
    for identity in identities:
        toy.credentials[identity.agent_id] = identity.credential
    fleet = Fleet(identities, toy.url, tmp_path / "fleet", processes=2, max_seconds=60)
    await asyncio.to_thread(fleet.start)
    try:
        await _until(lambda: len(toy.connections) == len(identities), timeout_s=30)
    finally:
        stats = await asyncio.to_thread(fleet.stop)
    assert sorted(item["agent_id"] for item in stats) == sorted(i.agent_id for i in identities)
    assert all(len(item["welcomes"]) >= 1 for item in stats), stats
    assert [item for item in stats if item["final_close"] is not None] == []
