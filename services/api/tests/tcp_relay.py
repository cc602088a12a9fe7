"""A TCP relay on 127.0.0.1 in front of a real server, for tests about what that server sees.

It counts how often a byte string crosses from client to server (a readiness query, the URL of
a readiness GET), and it can hold back, until released, every client chunk that contains another
byte string (user traffic), to keep the user pool or thread limiter busy on purpose. It runs on
the test's event loop; the clients may be in threads.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

_CHUNK = 65_536


class TcpRelay:
    def __init__(self, upstream_host: str, upstream_port: int, *, count: tuple[bytes, ...] = ()) -> None:
        self._upstream = (upstream_host, upstream_port)
        self._markers = count
        self._counts: Counter[bytes] = Counter()
        self._held: bytes | None = None
        self._release = asyncio.Event()
        self._server: asyncio.Server | None = None
        self._pipes: set[asyncio.Task[None]] = set()
        self.port = 0

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    def count(self, marker: bytes) -> int:
        return self._counts[marker]

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def aclose(self) -> None:
        self.release()
        if self._server is not None:
            self._server.close()
        for pipe in list(self._pipes):
            pipe.cancel()
        await asyncio.gather(*self._pipes, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()

    def hold(self, marker: bytes) -> None:
        """From now on, client chunks containing ``marker`` wait until ``release()``."""
        self._release.clear()
        self._held = marker

    def release(self) -> None:
        self._held = None
        self._release.set()

    async def _serve(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        try:
            server_reader, server_writer = await asyncio.open_connection(*self._upstream)
        except OSError:
            client_writer.close()
            return
        pipes = (
            asyncio.create_task(self._pipe(client_reader, server_writer, upstream=True)),
            asyncio.create_task(self._pipe(server_reader, client_writer, upstream=False)),
        )
        self._pipes.update(pipes)
        try:
            await asyncio.wait(pipes, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for pipe in pipes:
                pipe.cancel()
            await asyncio.gather(*pipes, return_exceptions=True)
            self._pipes.difference_update(pipes)
            for writer in (client_writer, server_writer):
                writer.close()

    async def _pipe(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, *, upstream: bool
    ) -> None:
        # A marker may straddle two reads: the last len(marker) - 1 bytes are searched again with
        # the next chunk; too short to hold the marker, so no occurrence is counted twice.
        tails = dict.fromkeys(self._markers, b"")
        with contextlib.suppress(ConnectionError):
            while chunk := await reader.read(_CHUNK):
                if upstream:
                    for marker, tail in tails.items():
                        window = tail + chunk
                        self._counts[marker] += window.count(marker)
                        tails[marker] = window[len(window) - len(marker) + 1 :]
                    if self._held is not None and self._held in chunk:
                        await self._release.wait()
                writer.write(chunk)
                await writer.drain()


@asynccontextmanager
async def relay(
    upstream_host: str, upstream_port: int, *, count: tuple[bytes, ...] = ()
) -> AsyncIterator[TcpRelay]:
    running = TcpRelay(upstream_host, upstream_port, count=count)
    await running.start()
    try:
        yield running
    finally:
        await running.aclose()
