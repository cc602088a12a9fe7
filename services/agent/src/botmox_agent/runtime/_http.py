"""The agent's local HTTP server (``BOTMOX_AGENT_HTTP_ADDRESS``): ``GET /metrics`` (Prometheus text) and
``GET /healthz`` (200 once a ``welcome`` arrived on the current connection, else 503; a JSON body with
the state). Two read-only routes on loopback need no framework: a request line is read, headers are
skipped, one answer is written and the connection closed.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Callable
from typing import Final

from prometheus_client import CONTENT_TYPE_LATEST

from botmox_agent.runtime._metrics import AgentMetrics

_READ_TIMEOUT_S: Final = 5.0
_MAX_HEADER_LINES: Final = 100
_REASONS: Final = {
    200: "OK",
    400: "Bad Request",
    404: "Not Found",
    405: "Method Not Allowed",
    503: "Service Unavailable",
}

Health = Callable[[], tuple[bool, dict[str, object]]]
"""Whether the agent is healthy, and the state to show."""


class HttpServerError(Exception):
    """The server cannot listen at its address (in use, not an address of this machine)."""


class LocalHttpServer:
    def __init__(self, host: str, port: int, *, metrics: AgentMetrics, health: Health) -> None:
        self._host = host
        self._port = port
        self._metrics = metrics
        self._health = health
        self._server: asyncio.Server | None = None

    @property
    def port(self) -> int:
        """The bound port (the one asked for, or the system's pick for 0)."""
        assert self._server is not None
        return int(self._server.sockets[0].getsockname()[1])

    async def start(self) -> None:
        try:
            self._server = await asyncio.start_server(self._serve, self._host, self._port)
        except OSError as error:
            raise HttpServerError(
                f"cannot listen on {self._host}:{self._port} (BOTMOX_AGENT_HTTP_ADDRESS): {error.strerror}"
            ) from None

    async def aclose(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            status, content_type, body = await asyncio.wait_for(self._answer(reader), _READ_TIMEOUT_S)
        except (TimeoutError, ValueError, ConnectionError, asyncio.IncompleteReadError):
            status, content_type, body = 400, "text/plain", b"bad request\n"
        head = (
            f"HTTP/1.1 {status} {_REASONS[status]}\r\nContent-Type: {content_type}\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\nCache-Control: no-store\r\n\r\n"
        )
        with contextlib.suppress(ConnectionError):
            writer.write(head.encode() + body)
            await writer.drain()
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()

    async def _answer(self, reader: asyncio.StreamReader) -> tuple[int, str, bytes]:
        request_line = (await reader.readline()).decode("latin-1").split()
        for _ in range(_MAX_HEADER_LINES):
            if (await reader.readline()) in (b"\r\n", b"\n", b""):
                break
        if len(request_line) != 3:
            raise ValueError("not an HTTP request line")
        method, target, _version = request_line
        path = target.split("?", 1)[0]
        if path not in ("/metrics", "/healthz"):
            return 404, "text/plain", b"not found\n"
        if method != "GET":
            return 405, "text/plain", b"method not allowed\n"
        if path == "/metrics":
            return 200, CONTENT_TYPE_LATEST, self._metrics.exposition()
        healthy, state = self._health()
        return (200 if healthy else 503), "application/json", json.dumps(state).encode() + b"\n"
