"""Shared by the runtime's tests: a fake control plane (``botmox_protocol.ServerSession`` over a real
``websockets`` server on 127.0.0.1), fake executors that count their calls, and a paired agent's files."""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import os
import ssl
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http import HTTPStatus
from pathlib import Path

import httpx
import websockets
from pydantic import BaseModel, JsonValue
from vault_support import CHEAP_COST, PASSPHRASE
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.http11 import Request, Response

from botmox_agent.executors import CommandFailed, Progress
from botmox_agent.executors._deadline import remaining_seconds
from botmox_agent.runtime import (
    CREDENTIAL_REF,
    AgentSettings,
    Identity,
    RunOptions,
    StateDir,
    TunnelEnded,
    run_agent,
)
from botmox_agent.runtime._logging import agent_logger
from botmox_agent.vault import PassphraseKeySource, SecretValue, Vault
from botmox_protocol import (
    CommandAckFrame,
    CommandProgressFrame,
    CommandResultFrame,
    ErrorFrame,
    Frame,
    HelloFrame,
    ProtocolError,
    ServerSession,
    SessionTerms,
    encode_frame,
    parse_frame,
)

AGENT_ID = "6f1c2a9e-3b7d-4e8a-9c0f-1d2e3f4a5b6c"
TENANT_ID = "tenant-one"
CREDENTIAL = "agent-credential-Zq8v3LxP0wTkM2sYb7RcN4hJ9dFgA1e"
PAIRING_CODE = "pairing-code-Hk3Wq9Zt5Lm2Xp7Vb4Nc8Rd1Sf6Gj0Ya"


async def eventually(check: Callable[[], bool], within_s: float = 10.0) -> None:
    """Waits until `check()` holds (polling); fails the test after `within_s` seconds."""
    deadline = time.monotonic() + within_s
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError("the condition did not hold in time")
        await asyncio.sleep(0.01)


@dataclass
class Connection:
    ws: ServerConnection
    session: ServerSession
    frames: list[Frame] = field(default_factory=list)
    peer_errors: list[ErrorFrame] = field(default_factory=list)

    @property
    def welcomed(self) -> bool:
        return self.session.hello is not None


@dataclass
class RunningAgent:
    task: asyncio.Task[TunnelEnded]
    stop: asyncio.Event
    log: io.StringIO
    executors: FakeExecutors
    attempts: list[int] = field(default_factory=list)
    http_port: int | None = None

    def events(self) -> list[dict[str, object]]:
        return [json.loads(line) for line in self.log.getvalue().splitlines()]

    def event_names(self) -> list[str]:
        return [str(event["event"]) for event in self.events()]


@asynccontextmanager
async def running_agent(
    settings: AgentSettings,
    executors: FakeExecutors | None = None,
    pairing_transport: httpx.BaseTransport | None = None,
    open_timeout_s: float = 10.0,
) -> AsyncIterator[RunningAgent]:
    """Runs the agent in this event loop (reconnect delays of 10 ms, recorded); stops it at the end."""
    running = RunningAgent(
        task=None,  # type: ignore[arg-type]
        stop=asyncio.Event(),
        log=io.StringIO(),
        executors=executors or FakeExecutors(),
    )

    def delay(attempt: int) -> float:
        running.attempts.append(attempt)
        return 0.01

    def http_ready(port: int) -> None:
        running.http_port = port

    running.task = asyncio.create_task(
        run_agent(
            settings,
            executors_factory=lambda _settings, _secrets: running.executors,
            stop=running.stop,
            log=agent_logger(running.log),
            options=RunOptions(
                delay=delay,
                shutdown_grace_s=2.0,
                on_http_ready=http_ready,
                pairing_transport=pairing_transport,
                open_timeout_s=open_timeout_s,
            ),
        )
    )
    try:
        yield running
    finally:
        running.stop.set()
        await asyncio.wait_for(asyncio.shield(running.task), 10)
        assert CREDENTIAL not in running.log.getvalue()


class FakeControlPlane:
    """The tunnel's server side, as the API will run it: headers checked at the handshake (4401),
    then a ServerSession per connection. Tests send commands, raw text, and close codes."""

    def __init__(
        self,
        *,
        credential: str = CREDENTIAL,
        agent_id: str = AGENT_ID,
        tls: ssl.SSLContext | None = None,
        heartbeat_interval_s: int = 1,
    ) -> None:
        self.credential = credential
        self.agent_id = agent_id
        self.tls = tls
        self.terms = SessionTerms(heartbeat_interval_s=heartbeat_interval_s, heartbeat_timeout_s=30)
        self.connections: list[Connection] = []
        self.attempts = 0
        # Close codes for the next connections, one each, before any frame.
        self.refuse_next: list[int] = []
        # How many of the next connections read frames but never answer (no welcome).
        self.silent_next = 0
        # An HTTP status refusing every upgrade (a gate in front of the tunnel).
        self.http_refusal: int | None = None
        self._server: Server | None = None

    async def __aenter__(self) -> FakeControlPlane:
        self._server = await serve(
            self._handle, "127.0.0.1", 0, ssl=self.tls, compression=None, process_request=self._gate
        )
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()

    @property
    def url(self) -> str:
        assert self._server is not None
        port = next(iter(self._server.sockets)).getsockname()[1]
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{port}"

    @property
    def current(self) -> Connection:
        return self.connections[-1]

    def all_frames(self) -> list[Frame]:
        return [frame for connection in self.connections for frame in connection.frames]

    def results(self, command_id: str) -> list[CommandResultFrame]:
        return [
            f for f in self.all_frames() if isinstance(f, CommandResultFrame) and f.command_id == command_id
        ]

    def acks(self, command_id: str) -> list[CommandAckFrame]:
        return [f for f in self.all_frames() if isinstance(f, CommandAckFrame) and f.command_id == command_id]

    def progress(self, command_id: str) -> list[CommandProgressFrame]:
        return [
            f for f in self.all_frames() if isinstance(f, CommandProgressFrame) and f.command_id == command_id
        ]

    async def wait_welcomed(self, connections: int = 1) -> Connection:
        await eventually(lambda: len(self.connections) >= connections and self.connections[-1].welcomed)
        return self.current

    async def send_command(
        self,
        command_id: str,
        kind: str = "syncthing.status",
        params: dict[str, JsonValue] | None = None,
        deadline: datetime | None = None,
    ) -> None:
        connection = self.current
        frame = connection.session.send_command(
            command_id=command_id,
            kind=kind,
            params=params or {},
            deadline=deadline or datetime.now(UTC) + timedelta(minutes=5),
        )
        await connection.ws.send(encode_frame(frame))

    async def drop(self, code: int = 1011) -> None:
        await self.current.ws.close(code, "test drop")

    def _gate(self, ws: ServerConnection, request: Request) -> Response | None:
        if self.http_refusal is None:
            return None
        self.attempts += 1
        return ws.respond(HTTPStatus(self.http_refusal), "refused\n")

    async def _handle(self, ws: ServerConnection) -> None:
        self.attempts += 1
        headers = ws.request.headers if ws.request is not None else {}
        if (
            headers.get("Authorization") != f"Bearer {self.credential}"
            or headers.get("X-Botmox-Agent-Id") != self.agent_id
        ):
            await ws.close(4401, "bad credential")
            return
        if self.refuse_next:
            await ws.close(self.refuse_next.pop(0), "refused by the test")
            return
        if self.silent_next:
            self.silent_next -= 1
            with contextlib.suppress(websockets.ConnectionClosed):
                async for _ in ws:
                    pass
            return
        connection = Connection(ws, ServerSession(agent_id=self.agent_id, terms=self.terms))
        self.connections.append(connection)
        with contextlib.suppress(websockets.ConnectionClosed):
            async for message in ws:
                try:
                    frame = parse_frame(message)
                except ProtocolError as error:
                    await ws.send(encode_frame(connection.session.reject(error)))
                    continue
                reaction = connection.session.receive(frame)
                if reaction.peer_error is not None:
                    connection.peer_errors.append(reaction.peer_error)
                if reaction.accepted is not None:
                    connection.frames.append(reaction.accepted)
                for outgoing in reaction.send:
                    await ws.send(encode_frame(outgoing))
                if reaction.close is not None:
                    await ws.close(reaction.close)
                    return

    def hello(self) -> HelloFrame:
        hello = self.current.session.hello
        assert hello is not None
        return hello


class FakeExecutors:
    """Counts its calls; `block` holds commands until `release` is set; proxmox.vm.start fails."""

    def __init__(self, *, block: bool = False) -> None:
        self.calls: list[tuple[str, BaseModel]] = []
        # What each call saw of its command's deadline (executors bound their waits by it).
        self.seconds_left: list[float] = []
        self.block = block
        # Replaces the answer of syncthing.status when set (a test's odd executor).
        self.answer: Callable[[], JsonValue] | None = None
        self.release = asyncio.Event()
        self.closed = False

    def kinds(self) -> frozenset[str]:
        return frozenset({"syncthing.status", "proxmox.vm.start"})

    async def run(self, kind: str, params: BaseModel, progress: Progress) -> JsonValue:
        self.calls.append((kind, params))
        self.seconds_left.append(remaining_seconds(default=1e9))
        await progress(50, "half way")
        if self.block:
            await self.release.wait()
        if kind == "proxmox.vm.start":
            raise CommandFailed("PROXMOX_UNREACHABLE", "pve1: connection refused")
        if self.answer is not None:
            return self.answer()
        return {"version": "v1.19.0", "calls": len(self.calls)}

    async def aclose(self) -> None:
        self.closed = True


def make_vault(path: Path, credential: str | None = CREDENTIAL) -> Vault:
    vault = Vault.create(path, PassphraseKeySource(SecretValue(PASSPHRASE), CHEAP_COST))
    if credential is not None:
        vault.set(CREDENTIAL_REF, SecretValue(credential))
    return vault


def paired_agent(root: Path, server_url: str, **overrides: object) -> AgentSettings:
    """Settings of an agent paired with `server_url`: its vault (cheap passphrase) and identity.json."""
    settings = agent_settings(root, **overrides)
    make_vault(settings.vault)
    StateDir(settings.state_dir).write_identity(
        Identity(
            server_url=server_url,
            agent_id=AGENT_ID,
            tenant_id=TENANT_ID,
            name="test-agent",
            paired_at="2026-12-06T08:00:00Z",
        )
    )
    return settings


def agent_settings(root: Path, **overrides: object) -> AgentSettings:
    values: dict[str, object] = {
        "state_dir": root / "state",
        "vault": root / "vault" / "vault.json",
        "vault_passphrase": PASSPHRASE,
        "name": "test-agent",
        "http_address": None,
        "server_url": None,
        "pairing_code": None,
        "ca_file": None,
        "key_source": "passphrase",
    }
    values.update(overrides)
    return AgentSettings(**values)  # type: ignore[arg-type]


def agent_env(settings: AgentSettings, **extra: str) -> dict[str, str]:
    """The environment of an agent process (or CliRunner) with these settings, no other BOTMOX_AGENT_*."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("BOTMOX_AGENT_")}
    env.update(
        BOTMOX_AGENT_STATE_DIR=str(settings.state_dir),
        BOTMOX_AGENT_VAULT=str(settings.vault),
        BOTMOX_AGENT_VAULT_PASSPHRASE=PASSPHRASE,
        BOTMOX_AGENT_NAME="test-agent",
        **extra,
    )
    return env
