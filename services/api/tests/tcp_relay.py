"""A TCP relay on 127.0.0.1 in front of a real server, for tests about what that server sees.

Everything a client sends goes through a tally made for its connection, which counts what the
server receives: ``Markers`` counts byte strings (the URL of a readiness GET, a user path),
``PgStatements`` counts the statements of PostgreSQL's wire protocol. The relay can also hold back,
until released, every client chunk that contains a given byte string (user traffic), to keep the
user pool or thread limiter busy on purpose. It runs on the test's event loop; the clients may be in
threads.
"""

from __future__ import annotations

import asyncio
import contextlib
import struct
from collections import Counter
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Final

_CHUNK: Final = 65_536

Tally = Callable[[bytes], None]
"""Fed every chunk one client sends, in order; counts into the relay's ``Counter``."""


class Markers:
    """Counts each marker (key: the marker decoded) in what one client sends."""

    def __init__(self, *markers: bytes) -> None:
        self._markers = markers

    def __call__(self, counts: Counter[str]) -> Tally:
        # A marker may straddle two reads: the last len(marker) - 1 bytes are searched again with
        # the next chunk; too short to hold the marker, so no occurrence is counted twice.
        tails = dict.fromkeys(self._markers, b"")

        def feed(chunk: bytes) -> None:
            for marker, tail in tails.items():
                window = tail + chunk
                counts[marker.decode()] += window.count(marker)
                tails[marker] = window[len(window) - len(marker) + 1 :]

        return feed


# Requests sent before the startup message, without a type byte: SSLRequest, GSSENCRequest.
_PG_PRE_STARTUP_CODES: Final = frozenset({80877103, 80877104})
_PG_STATEMENT_MESSAGES: Final = frozenset({b"Q", b"E"})
# The messages after which a client waits for the server's answer: Query (simple protocol), Sync
# and Flush (extended protocol; the Parse/Bind/Execute before them travel in the same write).
_PG_ROUND_TRIP_MESSAGES: Final = frozenset({b"Q", b"S", b"H"})
PG_STATEMENT: Final = "statement"
PG_ROUND_TRIP: Final = "round trip"


def _pg_client_messages(
    on_message: Callable[[bytes], None], on_startup: Callable[[bytes], None] | None = None
) -> Tally:
    """Splits what a PostgreSQL client sends into messages; calls ``on_startup`` with the startup
    message (its parameters: user, database, application_name) and ``on_message`` with each type
    byte after it."""
    pending = bytearray()
    started = False

    def feed(chunk: bytes) -> None:
        nonlocal started
        pending.extend(chunk)
        while True:
            if not started:  # Int32 length, Int32 code, then the rest
                if len(pending) < 8:
                    return
                length, code = struct.unpack("!ii", pending[:8])
                if len(pending) < length:
                    return
                started = code not in _PG_PRE_STARTUP_CODES
                if started and on_startup is not None:
                    on_startup(bytes(pending[:length]))
                del pending[:length]
                continue
            if len(pending) < 5:  # Byte1 type, Int32 length (itself included), then the rest
                return
            (length,) = struct.unpack("!i", pending[1:5])
            if len(pending) < 1 + length:
                return
            on_message(bytes(pending[:1]))
            del pending[: 1 + length]

    return feed


class PgStatements:
    """Counts (key ``PG_STATEMENT``) the statements a PostgreSQL client sends: Query messages of
    the simple protocol and Execute messages of the extended one. A prepared statement is executed
    without its text, so counting by text would miss it. Also counts (key ``PG_ROUND_TRIP``) the
    messages the client then waits on, one per round trip. ``ignore_application``: connections whose
    startup names this ``application_name`` are not counted (the API's tunnel listener, say, whose
    LISTEN is no part of what a test measures)."""

    def __init__(self, *, ignore_application: str | None = None) -> None:
        self._ignored = None if ignore_application is None else b"\0" + ignore_application.encode() + b"\0"

    def __call__(self, counts: Counter[str]) -> Tally:
        ignored = False

        def startup(message: bytes) -> None:
            nonlocal ignored
            ignored = self._ignored is not None and self._ignored in message

        def count(kind: bytes) -> None:
            if ignored:
                return
            if kind in _PG_STATEMENT_MESSAGES:
                counts[PG_STATEMENT] += 1
            if kind in _PG_ROUND_TRIP_MESSAGES:
                counts[PG_ROUND_TRIP] += 1

        return _pg_client_messages(count, startup)


class TcpRelay:
    def __init__(
        self, upstream_host: str, upstream_port: int, tally: Callable[[Counter[str]], Tally] | None = None
    ) -> None:
        self._upstream = (upstream_host, upstream_port)
        self._tally = tally or Markers()
        self.counts: Counter[str] = Counter()
        self._held: bytes | None = None
        self._release = asyncio.Event()
        self._server: asyncio.Server | None = None
        self._pipes: set[asyncio.Task[None]] = set()
        # The connection handlers themselves: on Python 3.11 ``Server.wait_closed`` does not wait
        # for them, and one still opening its upstream when the relay closes would leave both
        # sockets to the garbage collector (a ResourceWarning in whichever test runs next).
        self._connections: set[asyncio.Task[None]] = set()
        self.port = 0

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def aclose(self) -> None:
        self.release()
        if self._server is not None:
            self._server.close()
        tasks = [*self._pipes, *self._connections]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
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
        task = asyncio.current_task()
        assert task is not None
        self._connections.add(task)
        writers = [client_writer]
        try:
            try:
                server_reader, server_writer = await asyncio.open_connection(*self._upstream)
            except OSError:
                return
            writers.append(server_writer)
            pipes = (
                asyncio.create_task(self._pipe(client_reader, server_writer, self._tally(self.counts))),
                asyncio.create_task(self._pipe(server_reader, client_writer, None)),
            )
            self._pipes.update(pipes)
            try:
                await asyncio.wait(pipes, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for pipe in pipes:
                    pipe.cancel()
                await asyncio.gather(*pipes, return_exceptions=True)
                self._pipes.difference_update(pipes)
        finally:
            for writer in writers:
                writer.close()
            for writer in writers:
                with contextlib.suppress(ConnectionError, asyncio.CancelledError):
                    await writer.wait_closed()
            self._connections.discard(task)

    async def _pipe(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, tally: Tally | None
    ) -> None:
        with contextlib.suppress(ConnectionError):
            while chunk := await reader.read(_CHUNK):
                if tally is not None:
                    tally(chunk)
                    if self._held is not None and self._held in chunk:
                        await self._release.wait()
                writer.write(chunk)
                await writer.drain()


@asynccontextmanager
async def relay(
    upstream_host: str, upstream_port: int, tally: Callable[[Counter[str]], Tally] | None = None
) -> AsyncIterator[TcpRelay]:
    running = TcpRelay(upstream_host, upstream_port, tally)
    await running.start()
    try:
        yield running
    finally:
        await running.aclose()
