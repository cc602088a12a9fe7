"""The emulator's ASGI application: RTDB REST semantics on top of the tree, hub and snapshot."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import time
from dataclasses import dataclass
from pathlib import Path

from harness.rtdb.asgi_io import (
    Receive,
    RtdbRequest,
    Scope,
    Send,
    etag_header,
    parse_request,
    read_body,
    respond,
    respond_error,
    until_disconnect,
)
from harness.rtdb.faults import CONTROL_PREFIX, FaultHooks
from harness.rtdb.keys import MAX_DEPTH, InvalidRequest, is_prefix, split_update_key
from harness.rtdb.pushids import PushIdGenerator
from harness.rtdb.query import parse_query, run_query
from harness.rtdb.snapshot import Durability, InMemoryOnly, SnapshotError, SnapshotFile, load_snapshot
from harness.rtdb.streams import KEEP_ALIVE, ListenerHub, StreamsClosed, Subscription, sse_event
from harness.rtdb.tree import Database, Write
from harness.rtdb.tree import Path as TreePath
from harness.rtdb.values import (
    Node,
    Served,
    ServerValues,
    encode,
    etag,
    normalize,
    parse_body,
    render,
    shallow,
)

_UNSUPPORTED_PARAMS = {
    "format": "format=export (priorities) is not supported by this emulator",
    "callback": "JSONP callbacks are not supported by this emulator",
    "download": "download is not supported by this emulator",
    "startAfter": "startAfter is not supported by this emulator",
    "endBefore": "endBefore is not supported by this emulator",
}


class _PreconditionFailed(Exception):
    """``if-match`` did not match: RTDB answers 412 with the current value and its ETag."""

    def __init__(self, body: bytes, tag: str) -> None:
        super().__init__(tag)
        self.body = body
        self.tag = tag


@dataclass(frozen=True, slots=True)
class EmulatorConfig:
    snapshot: Path | None = None
    default_namespace: str = "default"
    # Real RTDB sends a keep-alive every ~30 s; a short interval lets a client's listener close()
    # (which only notices the closed connection on its next read) return promptly.
    keepalive_seconds: float = 1.0
    max_body_bytes: int = 64 * 1024 * 1024


class RtdbApp:
    def __init__(self, config: EmulatorConfig) -> None:
        self._config = config
        self._database = Database()
        self._hub = ListenerHub()
        self._push_ids = PushIdGenerator()
        self._faults = FaultHooks()
        self._durability: Durability
        if config.snapshot is not None:
            load_snapshot(config.snapshot, self._database)
            self._durability = SnapshotFile(config.snapshot, self._database)
        else:
            self._durability = InMemoryOnly()

    def close_streams(self) -> None:
        """Ends every open stream; called when the server begins to shut down."""
        self._hub.close()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        try:
            if scope["path"].startswith(CONTROL_PREFIX):
                await self._faults.control(scope, receive, send, self._config.default_namespace)
                return
            send = self._faults.delaying(scope, send, self._config.default_namespace)
            request = parse_request(scope, self._config.default_namespace)
            for name, reason in _UNSUPPORTED_PARAMS.items():
                if name in request.params:
                    raise InvalidRequest(reason)
            if request.method == "GET" and request.wants_stream:
                await self._stream(request, receive, send)
                return
            await self._dispatch(request, receive, self._faults.answering(request, receive, send))
        except InvalidRequest as error:
            await respond_error(send, error.status, error.message)
        except SnapshotError as error:
            await respond_error(send, 500, f"Write not acknowledged: {error}")

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    await self._durability.start()
                except SnapshotError as error:
                    await send({"type": "lifespan.startup.failed", "message": str(error)})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                self._hub.close()
                await self._durability.stop()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _dispatch(self, request: RtdbRequest, receive: Receive, send: Send) -> None:
        method = request.method
        if method == "GET":
            await self._get(request, send)
            return
        if method not in ("PUT", "PATCH", "POST", "DELETE"):
            raise InvalidRequest(f"Method {method} is not supported", status=405)
        if_match = request.headers.get("if-match")
        if if_match is not None and method not in ("PUT", "DELETE"):
            raise InvalidRequest("if-match is only supported on PUT and DELETE requests")
        body = b"" if method == "DELETE" else await read_body(receive, self._config.max_body_bytes)
        server = ServerValues(
            now_ms=time.time_ns() // 1_000_000,
            current=lambda at: self._database.get(request.namespace, at),
        )
        # From here to _commit nothing awaits: validation, the if-match check and the write are
        # one step on the event loop, hence atomic.
        try:
            if method == "PATCH":
                write, answer = self._patch(request, body, server)
            elif method == "POST":
                write, answer = self._post(request, body, server)
            else:
                write, answer = self._put_or_delete(request, body, server)
        except _PreconditionFailed as refusal:
            await self._durability.wait_durable(self._durability.generation)
            await respond(send, 412, refusal.body, etag_header(refusal.tag))
            return
        payload = None if request.silent else _printed(answer, request)
        generation = self._commit(write)
        headers = []
        if if_match is not None or request.wants_etag:
            headers = etag_header(etag(self._database.get(write.namespace, write.base)))
        await self._durability.wait_durable(generation)
        await respond(send, 204 if payload is None else 200, payload, headers)

    def _post(self, request: RtdbRequest, body: bytes, server: ServerValues) -> tuple[Write, Served]:
        name = self._push_ids.next_id()
        at = (*request.path, name)
        value = normalize(parse_body(body), at, server)
        return Write(request.namespace, at, (((), value),), False), {"name": name}

    def _put_or_delete(self, request: RtdbRequest, body: bytes, server: ServerValues) -> tuple[Write, Served]:
        value = None if request.method == "DELETE" else normalize(parse_body(body), request.path, server)
        if_match = request.headers.get("if-match")
        if if_match is not None:
            current = self._database.get(request.namespace, request.path)
            current_tag = etag(current)
            if if_match != current_tag:
                raise _PreconditionFailed(encode(render(current)), current_tag)
        return Write(request.namespace, request.path, (((), value),), False), render(value)

    def _patch(self, request: RtdbRequest, body: bytes, server: ServerValues) -> tuple[Write, Served]:
        raw = parse_body(body)
        if not isinstance(raw, dict):
            raise InvalidRequest("Invalid data; PATCH requires a JSON object")
        relatives: list[tuple[TreePath, str, object]] = []
        for key, item in raw.items():
            relative = split_update_key(key)
            if len(request.path) + len(relative) > MAX_DEPTH:
                raise InvalidRequest(f"Invalid data; path deeper than {MAX_DEPTH} levels")
            relatives.append((relative, key, item))
        ordered = sorted(relative for relative, _, _ in relatives)
        for shorter, longer in itertools.pairwise(ordered):
            if is_prefix(shorter, longer):
                raise InvalidRequest(f"Invalid data; path {'/'.join(longer)} overlaps {'/'.join(shorter)}")
        updates = tuple(
            (relative, normalize(item, (*request.path, *relative), server)) for relative, _, item in relatives
        )
        answer: Served = {
            key: render(value) for (_, key, _), (_, value) in zip(relatives, updates, strict=True)
        }
        return Write(request.namespace, request.path, updates, True), answer

    def _commit(self, write: Write) -> int:
        before = self._hub.capture_before(write, self._database)
        self._database.apply(write)
        generation = self._durability.note_write()
        self._hub.publish(write, before, self._database, generation)
        return generation

    async def _get(self, request: RtdbRequest, send: Send) -> None:
        node = self._database.get(request.namespace, request.path)
        query = parse_query(request.params)
        is_shallow = request.params.get("shallow") == "true"
        if is_shallow and query is not None:
            raise InvalidRequest("Mixing 'shallow' and query parameters is not supported")
        tag = etag(node)
        if_none_match = request.headers.get("if-none-match")
        # RTDB also sends the ETag with a changed value (get_if_changed returns it).
        headers = etag_header(tag) if request.wants_etag or if_none_match is not None else []
        # Serve nothing that is not yet durable: wait for every write applied so far.
        generation = self._durability.generation
        if if_none_match == tag:
            await self._durability.wait_durable(generation)
            await respond(send, 304, None, etag_header(tag))
            return
        selected: Node | None = run_query(node, query) if query is not None else node
        answer = shallow(selected) if is_shallow else render(selected)
        payload = None if request.silent else _printed(answer, request)
        await self._durability.wait_durable(generation)
        await respond(send, 204 if payload is None else 200, payload, headers)

    async def _stream(self, request: RtdbRequest, receive: Receive, send: Send) -> None:
        try:
            subscription = self._hub.subscribe(request.namespace, request.path)
        except StreamsClosed:
            raise InvalidRequest("The emulator is shutting down", status=503) from None
        # Subscribed and read in the same step, so no write falls between the two.
        initial = sse_event("put", (), render(self._database.get(request.namespace, request.path)))
        generation = self._durability.generation
        try:
            await self._durability.wait_durable(generation)
        except SnapshotError:
            self._hub.unsubscribe(subscription)
            raise
        watcher = asyncio.create_task(_end_on_disconnect(receive, subscription))
        try:
            await send(
                {
                    "type": "http.response.start",
                    "status": 200,
                    "headers": [
                        (b"content-type", b"text/event-stream; charset=utf-8"),
                        (b"cache-control", b"no-cache"),
                        (b"access-control-allow-origin", b"*"),
                    ],
                }
            )
            await _send_chunk(send, initial)
            await self._pump(subscription, send)
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        except (OSError, SnapshotError):
            return  # the client went away, or durability failed: the client reconnects
        finally:
            self._hub.unsubscribe(subscription)
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher

    async def _pump(self, subscription: Subscription, send: Send) -> None:
        while True:
            try:
                item = await asyncio.wait_for(subscription.queue.get(), self._config.keepalive_seconds)
            except TimeoutError:
                await _send_chunk(send, KEEP_ALIVE)
                continue
            if item is None:
                return
            await self._durability.wait_durable(item.generation)
            await _send_chunk(send, item.payload)


async def _send_chunk(send: Send, chunk: bytes) -> None:
    await send({"type": "http.response.body", "body": chunk, "more_body": True})


async def _end_on_disconnect(receive: Receive, subscription: Subscription) -> None:
    await until_disconnect(receive)
    subscription.queue.put_nowait(None)


def _printed(answer: Served, request: RtdbRequest) -> bytes:
    if request.params.get("print") == "pretty":
        return json.dumps(answer, ensure_ascii=False, indent=2).encode("utf-8")
    return encode(answer)
