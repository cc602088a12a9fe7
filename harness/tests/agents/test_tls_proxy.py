"""The test tools of the agent suite on their own: the throwaway CA, the TLS-terminating proxy and its
WebSocket tap, against a plain ``websockets`` echo server (no stack needed)."""

from __future__ import annotations

import asyncio
import json
import ssl
import threading
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from websockets.asyncio.client import connect
from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.extensions.permessage_deflate import ServerPerMessageDeflateFactory

from harness.fixtures.loopback_tls import LoopbackTls
from harness.fixtures.tls_proxy import TlsTerminatingProxy
from harness.fixtures.websocket_tap import Direction


async def _echo(connection: ServerConnection) -> None:
    async for message in connection:
        await connection.send(message)


@pytest.fixture(params=["context_takeover", "no_context_takeover"])
async def echo_port(request: pytest.FixtureRequest) -> AsyncIterator[int]:
    """An echo server; its permessage-deflate keeps one stream per direction, or resets per message."""
    reset = request.param == "no_context_takeover"
    deflate = ServerPerMessageDeflateFactory(
        server_no_context_takeover=reset, client_no_context_takeover=reset
    )
    async with serve(_echo, "127.0.0.1", 0, compression=None, extensions=[deflate]) as server:
        port: int = next(iter(server.sockets)).getsockname()[1]
        yield port


@pytest.fixture
def tls(tmp_path: Path) -> LoopbackTls:
    return LoopbackTls.create(tmp_path / "tls")


@pytest.fixture
def proxy(echo_port: int, tls: LoopbackTls) -> Iterator[TlsTerminatingProxy]:
    with TlsTerminatingProxy(echo_port, tls.server_context()) as started:
        yield started


def _wss(proxy: TlsTerminatingProxy) -> str:
    return proxy.url.replace("https://", "wss://", 1) + "/echo"


@pytest.mark.parametrize("compression", ["deflate", None])
async def test_messages_cross_the_proxy_and_the_tap_reads_them_in_clear(
    proxy: TlsTerminatingProxy, tls: LoopbackTls, compression: str | None
) -> None:
    big = json.dumps({"type": "heartbeat", "pad": "x" * 70_000})
    async with connect(_wss(proxy), ssl=tls.client_context(), compression=compression) as ws:
        for message in ("hello 1", "hello 2", big, "hello 1"):
            await ws.send(message)
            assert await ws.recv() == message
    await asyncio.sleep(0.1)
    assert proxy.record.text_messages(Direction.TO_SERVER) == ["hello 1", "hello 2", big, "hello 1"]
    assert proxy.record.text_messages(Direction.TO_CLIENT) == ["hello 1", "hello 2", big, "hello 1"]
    assert not proxy.record.undecodable_connections()
    # The client masks what it sends: the clear text is in the decoded messages, not in the raw bytes.
    assert b"hello 1" not in proxy.record.raw_bytes(Direction.TO_SERVER)


async def test_the_client_trusts_only_the_throwaway_ca(proxy: TlsTerminatingProxy) -> None:
    with pytest.raises(ssl.SSLCertVerificationError):
        async with connect(_wss(proxy), ssl=ssl.create_default_context()):
            pass


async def test_drop_connections_aborts_open_connections_without_a_close_frame(
    proxy: TlsTerminatingProxy, tls: LoopbackTls
) -> None:
    async with connect(_wss(proxy), ssl=tls.client_context()) as ws:
        await ws.send("before")
        assert await ws.recv() == "before"
        dropped = await asyncio.to_thread(proxy.drop_connections)
        with pytest.raises(ConnectionClosed) as closed:
            await ws.recv()
    assert dropped == 1
    assert closed.value.rcvd is None  # no close frame: an abnormal closure (1006)
    async with connect(_wss(proxy), ssl=tls.client_context()) as ws:
        await ws.send("after")
        assert await ws.recv() == "after"
    assert proxy.connections_opened == 2


def test_a_proxy_without_upstream_closes_the_client(tls: LoopbackTls) -> None:
    with TlsTerminatingProxy(1, tls.server_context()) as proxy:
        outcome: list[BaseException] = []

        def attempt() -> None:
            async def go() -> None:
                async with connect(_wss(proxy), ssl=tls.client_context(), open_timeout=5):
                    pass

            try:
                asyncio.run(go())
            except Exception as error:
                outcome.append(error)

        thread = threading.Thread(target=attempt)
        thread.start()
        thread.join(timeout=10)
        assert outcome, "the handshake through a proxy without upstream should fail"
