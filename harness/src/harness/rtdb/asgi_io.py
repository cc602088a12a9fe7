"""The thin ASGI layer: what a request asks for, and how answers go out (no framework needed)."""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, unquote

from harness.rtdb.keys import InvalidRequest, split_path
from harness.rtdb.tree import Path

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

_NAMESPACE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,99}")
_JSON_HEADERS = [
    (b"content-type", b"application/json; charset=utf-8"),
    (b"cache-control", b"no-cache"),
    (b"access-control-allow-origin", b"*"),
]


@dataclass(frozen=True, slots=True)
class RtdbRequest:
    method: str
    namespace: str
    path: Path
    params: dict[str, str]
    headers: dict[str, str]

    @property
    def silent(self) -> bool:
        return self.params.get("print") == "silent"

    @property
    def wants_etag(self) -> bool:
        return self.headers.get("x-firebase-etag", "").lower() == "true"

    @property
    def wants_stream(self) -> bool:
        return "text/event-stream" in self.headers.get("accept", "")


def query_params(scope: Scope) -> dict[str, str]:
    return dict(parse_qsl(scope.get("query_string", b"").decode("utf-8", "replace"), keep_blank_values=True))


def namespace_of(params: dict[str, str], default_namespace: str) -> str:
    namespace = params.get("ns", default_namespace)
    if _NAMESPACE.fullmatch(namespace) is None:
        raise InvalidRequest(f"Invalid namespace {namespace[:100]!r}")
    return namespace


def parse_request(scope: Scope, default_namespace: str) -> RtdbRequest:
    headers = {name.decode("latin-1").lower(): value.decode("latin-1") for name, value in scope["headers"]}
    method = scope["method"].upper()
    override = headers.get("x-http-method-override")
    if method == "POST" and override:
        method = override.upper()
    params = query_params(scope)
    namespace = namespace_of(params, default_namespace)
    raw_path: bytes = scope.get("raw_path") or scope["path"].encode("utf-8")
    try:
        text = raw_path.decode("utf-8")
        if not text.endswith(".json"):
            raise InvalidRequest("Not found: REST paths end in .json", status=404)
        segments = [unquote(segment, errors="strict") for segment in text[: -len(".json")].split("/")]
    except UnicodeDecodeError as error:
        raise InvalidRequest("Invalid path: Invalid token in path") from error
    # Decode each segment separately so an encoded slash (%2F) is a bad key, not a separator.
    path: list[str] = []
    for segment in segments:
        if segment:
            if "/" in segment:
                raise InvalidRequest("Invalid path: Invalid token in path")
            path.extend(split_path(segment))
    split_path("/".join(path))  # the depth limit applies to the whole path
    return RtdbRequest(method, namespace, tuple(path), params, headers)


async def read_body(receive: Receive, limit: int) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise InvalidRequest("Client disconnected", status=499)
        chunk: bytes = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise InvalidRequest(f"Request body is larger than {limit} bytes", status=413)
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


async def until_disconnect(receive: Receive) -> None:
    """Returns when the client has gone away (request body messages are skipped)."""
    while (await receive())["type"] != "http.disconnect":
        pass


async def respond(
    send: Send, status: int, body: bytes | None, headers: list[tuple[bytes, bytes]] | None = None
) -> None:
    all_headers = [*_JSON_HEADERS, *(headers or [])]
    payload = b"" if body is None or status in (204, 304) else body
    all_headers.append((b"content-length", str(len(payload)).encode("ascii")))
    await send({"type": "http.response.start", "status": status, "headers": all_headers})
    await send({"type": "http.response.body", "body": payload})


async def respond_error(send: Send, status: int, message: str) -> None:
    await respond(send, status, json.dumps({"error": message}).encode("utf-8"))


def etag_header(tag: str) -> list[tuple[bytes, bytes]]:
    return [(b"etag", tag.encode("latin-1"))]
