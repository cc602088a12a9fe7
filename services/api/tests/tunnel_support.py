"""The agent tunnel's tests' tools: the real API served by uvicorn on 127.0.0.1 (as ``python -m
botmox_api`` serves it, WebSocket options included) over the harness's PostgreSQL, and an agent
speaking the protocol's frames through the ``websockets`` client.

Waiting is always bounded (``WAIT_S``); no test asserts how long anything took.
"""

from __future__ import annotations

import asyncio
import socket
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, Final

import asyncpg
import httpx
import uvicorn
from api_support import INFRA_TOKEN, bearer, data, make_settings, supabase_token
from fastapi import FastAPI
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from botmox_api.app import create_app
from botmox_api.tunnel import UVICORN_WEBSOCKETS
from botmox_protocol import (
    TRANSPORT_MAX_BYTES,
    CommandFrame,
    ErrorFrame,
    Frame,
    HeartbeatFrame,
    HelloFrame,
    WelcomeFrame,
    encode_frame,
    parse_frame,
)
from harness.postgres.migrated import PgDatabase

WAIT_S: Final = 10.0
CAPABILITIES: Final = ("syncthing.status", "syncthing.folder.rescan")
WS_PATH: Final = "/api/v1/agents/ws"


def admin(tenant: str) -> dict[str, str]:
    return bearer(supabase_token(tenant, sub=f"admin-of-{tenant}", app_metadata={"roles": ["admin"]}))


def member(tenant: str) -> dict[str, str]:
    return bearer(supabase_token(tenant, sub=f"user-of-{tenant}"))


@dataclass
class Served:
    app: FastAPI
    port: int
    http: httpx.AsyncClient

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}{WS_PATH}"


@asynccontextmanager
async def served(database: PgDatabase | None, **overrides: Any) -> AsyncIterator[Served]:
    """The API on a port of its own until the block ends (then shut down as uvicorn does on SIGTERM);
    without a database, the API without ``SUPABASE_DB_URL``."""
    if database is not None:
        overrides["supabase_db_url"] = database.api_dsn
    settings = make_settings(**overrides)
    app = create_app(settings)
    config = uvicorn.Config(
        app,
        log_config=None,
        access_log=False,
        lifespan="on",
        timeout_graceful_shutdown=5,
        **UVICORN_WEBSOCKETS,
    )
    server = uvicorn.Server(config)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        async with asyncio.timeout(WAIT_S):
            while not server.started:
                if task.done():
                    task.result()
                await asyncio.sleep(0.02)
        tunnel = app.state.tunnel
        if tunnel is not None:
            await asyncio.wait_for(tunnel.listener.listening.wait(), WAIT_S)
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http:
            yield Served(app, port, http)
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, WAIT_S)
        sock.close()


@dataclass(frozen=True)
class Registered:
    agent_id: str
    tenant_id: str
    credential: str

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.credential}", "X-Botmox-Agent-Id": self.agent_id}


async def register_agent(
    api: Served, tenant: str, capabilities: tuple[str, ...] = CAPABILITIES
) -> Registered:
    pairing = await api.http.post("/api/v1/agents/pairings", headers=admin(tenant))
    assert pairing.status_code == 201, pairing.text
    body = {
        "code": data(pairing)["code"],
        "name": "agent-under-test",
        "version": "1.0.0",
        "capabilities": list(capabilities),
    }
    response = await api.http.post("/api/v1/agents/register", json=body)
    assert response.status_code == 201, response.text
    registered = data(response)
    return Registered(registered["agent_id"], registered["tenant_id"], registered["credential"])


class Agent:
    """One connection of a simulated agent: frames in and out, with bounded waits."""

    def __init__(self, ws: ClientConnection, agent_id: str) -> None:
        self.ws = ws
        self.agent_id = agent_id

    async def send(self, frame: Frame) -> None:
        await self.ws.send(encode_frame(frame))

    async def send_raw(self, text: str | bytes) -> None:
        await self.ws.send(text)

    async def receive(self, within_s: float = WAIT_S) -> Frame:
        return parse_frame(await asyncio.wait_for(self.ws.recv(), within_s))

    async def expect(self, kind: type[Any], within_s: float = WAIT_S) -> Any:
        frame = await self.receive(within_s)
        assert isinstance(frame, kind), frame
        return frame

    async def hello(self, capabilities: tuple[str, ...] = CAPABILITIES) -> WelcomeFrame:
        await self.send(
            HelloFrame(id=new_id(), agent_id=self.agent_id, agent_version="1.0.1", capabilities=capabilities)
        )
        welcome: WelcomeFrame = await self.expect(WelcomeFrame)
        return welcome

    async def heartbeat(self) -> None:
        await self.send(HeartbeatFrame(id=new_id()))

    async def command(self, within_s: float = WAIT_S) -> CommandFrame:
        frame: CommandFrame = await self.expect(CommandFrame, within_s)
        return frame

    async def error(self) -> ErrorFrame:
        frame: ErrorFrame = await self.expect(ErrorFrame)
        return frame

    async def closed_with(self, within_s: float = WAIT_S) -> tuple[int | None, list[Frame]]:
        """The close code the server sent, and any frames that came before it."""
        frames: list[Frame] = []
        async with asyncio.timeout(within_s):
            try:
                while True:
                    frames.append(parse_frame(await self.ws.recv()))
            except ConnectionClosed as closed:
                return (closed.rcvd.code if closed.rcvd else None), frames


def new_id() -> str:
    return uuid.uuid4().hex


@asynccontextmanager
async def agent_connection(api: Served, headers: dict[str, str], agent_id: str) -> AsyncIterator[Agent]:
    async with connect(
        api.ws_url, additional_headers=headers, max_size=TRANSPORT_MAX_BYTES, open_timeout=WAIT_S
    ) as ws:
        yield Agent(ws, agent_id)


@asynccontextmanager
async def connected(api: Served, agent: Registered) -> AsyncIterator[Agent]:
    """An agent past its hello (the welcome received)."""
    async with agent_connection(api, agent.headers(), agent.agent_id) as connection:
        await connection.hello()
        yield connection


async def enqueue(api: Served, agent: Registered, tenant: str | None = None, **body: Any) -> httpx.Response:
    return await api.http.post(
        f"/api/v1/agents/{agent.agent_id}/commands",
        json={"kind": "syncthing.status", "params": {}, **body},
        headers=member(tenant or agent.tenant_id),
    )


async def read_command(api: Served, agent: Registered, command_id: str) -> dict[str, Any]:
    response = await api.http.get(
        f"/api/v1/agents/{agent.agent_id}/commands/{command_id}", headers=member(agent.tenant_id)
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = data(response)
    return body


async def command_rows(database: PgDatabase) -> list[asyncpg.Record]:
    """Every command row, whoever's: what the tests check nothing was stored in."""
    conn = await asyncpg.connect(database.admin_dsn)
    try:
        rows: list[asyncpg.Record] = await conn.fetch(
            "select id, agent_id, status, deliveries, progress, result_data, error_code, acked_at"
            " from public.agent_commands order by created_at, id"
        )
        return rows
    finally:
        await conn.close()


async def metrics_text(api: Served) -> str:
    response = await api.http.get("/metrics", headers=bearer(INFRA_TOKEN))
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8"
    return response.text


async def until_status(api: Served, agent: Registered, command_id: str, status: str) -> dict[str, Any]:
    """The command once it reached ``status`` (read through the API, as the tenant)."""
    async with asyncio.timeout(WAIT_S):
        while True:
            command = await read_command(api, agent, command_id)
            if command["status"] == status:
                return command
            await asyncio.sleep(0.05)
