"""The local HTTP server's answers to what is not a plain GET of its two routes, and the tunnel's URL."""

from __future__ import annotations

import asyncio

import pytest

from botmox_agent.runtime import ws_url
from botmox_agent.runtime._http import LocalHttpServer
from botmox_agent.runtime._metrics import AgentMetrics


async def exchange(port: int, request: bytes) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(request)
    writer.write_eof()
    await writer.drain()
    answer = await reader.read()
    writer.close()
    await writer.wait_closed()
    return answer


@pytest.mark.parametrize(
    ("request_bytes", "status"),
    [
        (b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n", b"503"),
        (b"GET /metrics?x=1 HTTP/1.1\r\n\r\n", b"200"),
        (b"POST /metrics HTTP/1.1\r\nContent-Length: 0\r\n\r\n", b"405"),
        (b"GET /vault HTTP/1.1\r\n\r\n", b"404"),
        (b"nonsense\r\n\r\n", b"400"),
        (b"", b"400"),
    ],
)
async def test_answers(request_bytes: bytes, status: bytes) -> None:
    server = LocalHttpServer(
        "127.0.0.1", 0, metrics=AgentMetrics(), health=lambda: (False, {"status": "unavailable"})
    )
    await server.start()
    try:
        answer = await exchange(server.port, request_bytes)
    finally:
        await server.aclose()
    assert answer.split(b" ", 2)[1] == status
    assert b"Connection: close" in answer


@pytest.mark.parametrize(
    ("server_url", "expected"),
    [
        ("http://127.0.0.1:8000", "ws://127.0.0.1:8000/api/v1/agents/ws"),
        ("https://api.example.com", "wss://api.example.com/api/v1/agents/ws"),
        ("https://example.com/botmox/", "wss://example.com/botmox/api/v1/agents/ws"),
    ],
)
def test_the_tunnel_url_follows_the_server_url(server_url: str, expected: str) -> None:
    assert ws_url(server_url) == expected
