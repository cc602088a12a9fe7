"""Faults a test asks this emulator to inject (RTDB has nothing like it; the official emulator neither).

Control requests live under ``/.harness/``, a path no RTDB request can name (keys cannot hold
``.``), so they never touch data. Faults are armed per namespace, so tests sharing one emulator
process through ``rtdb_namespace`` never see each other's faults.

- ``POST /.harness/faults?ns=NS`` with ``{"kind": "drop_answer", "method": "PUT", "path": "a/b",
  "times": 1}`` arms "serve, then drop the answer": the next ``times`` successful requests with that
  method at exactly that path are served as usual (a write is applied and durable) but their answer
  is never sent. The connection stays open and silent until the client gives up, so the client sees
  a read timeout, as when RTDB's answer is lost on the way. A refused request (400, 412, ...) is
  answered and does not use the fault up.
- ``POST /.harness/faults?ns=NS`` with ``{"kind": "latency", "ms": 40}`` makes every data request of
  the namespace (not the control requests) answer ``ms`` milliseconds late, as an RTDB that far away
  would: each request sleeps on the event loop before its answer goes out, so concurrent requests
  wait together, never one after another. Arming it again replaces the delay; ``"ms": 0`` removes it.
- ``GET /.harness/faults?ns=NS``: the armed faults not used up yet,
  ``[{"kind": "drop_answer", "method", "path", "remaining"}]``, then ``{"kind": "latency", "ms"}``
  when a delay is armed.
- ``DELETE /.harness/faults?ns=NS``: disarms every fault of the namespace, the delay included.

The client side that tests use is ``harness.fixtures.rtdb.EmulatorFaults`` (fixture ``rtdb_faults``):
this module is part of the emulator, whose image holds the standard library and uvicorn only.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import Any, Final

from harness.rtdb.asgi_io import (
    Message,
    Receive,
    RtdbRequest,
    Scope,
    Send,
    namespace_of,
    query_params,
    read_body,
    respond,
    until_disconnect,
)
from harness.rtdb.keys import InvalidRequest, split_path
from harness.rtdb.tree import Path

CONTROL_PREFIX: Final = "/.harness/"
FAULTS_PATH: Final = "/.harness/faults"
DROP_ANSWER: Final = "drop_answer"
LATENCY: Final = "latency"
# A delay longer than any client's timeout would only hang the tests that arm it.
MAX_LATENCY_MS: Final = 60_000
_METHODS: Final = frozenset({"GET", "PUT", "PATCH", "POST", "DELETE"})
_MAX_CONTROL_BYTES: Final = 64 * 1024


@dataclass(slots=True)
class _Armed:
    method: str
    path: Path
    remaining: int

    def describe(self) -> dict[str, Any]:
        return {
            "kind": DROP_ANSWER,
            "method": self.method,
            "path": "/".join(self.path),
            "remaining": self.remaining,
        }


class FaultHooks:
    """The faults armed in one emulator process, by namespace."""

    def __init__(self) -> None:
        self._armed: dict[str, list[_Armed]] = {}
        self._latency_ms: dict[str, float] = {}

    def delaying(self, scope: Scope, send: Send, default_namespace: str) -> Send:
        """``send`` for a data request: the answer goes out late when a delay is armed for its
        namespace (read once, when the request arrives)."""
        try:
            namespace = namespace_of(query_params(scope), default_namespace)
        except InvalidRequest:
            return send  # refused for its namespace anyway
        delay_ms = self._latency_ms.get(namespace)
        if delay_ms is None:
            return send

        async def late(message: Message) -> None:
            if message["type"] == "http.response.start":
                await asyncio.sleep(delay_ms / 1000)
            await send(message)

        return late

    def answering(self, request: RtdbRequest, receive: Receive, send: Send) -> Send:
        """``send`` for the answer to ``request``: swallows a successful answer an armed fault drops,
        then holds the connection open until the client goes away."""
        dropping = False

        async def guarded(message: Message) -> None:
            nonlocal dropping
            if message["type"] == "http.response.start":
                dropping = 200 <= message["status"] < 300 and self._use(request)
            if not dropping:
                await send(message)
            elif message["type"] == "http.response.body" and not message.get("more_body", False):
                await until_disconnect(receive)

        return guarded

    def _use(self, request: RtdbRequest) -> bool:
        armed = self._armed.get(request.namespace, [])
        for fault in armed:
            if fault.method == request.method and fault.path == request.path:
                fault.remaining -= 1
                if fault.remaining == 0:
                    armed.remove(fault)
                return True
        return False

    async def control(self, scope: Scope, receive: Receive, send: Send, default_namespace: str) -> None:
        """Serves ``/.harness/faults``; raises ``InvalidRequest`` for anything else."""
        if scope["path"] != FAULTS_PATH:
            raise InvalidRequest(f"Not found: {scope['path'][:100]}", status=404)
        namespace = namespace_of(query_params(scope), default_namespace)
        method = scope["method"].upper()
        if method == "GET":
            listed = [fault.describe() for fault in self._armed.get(namespace, [])]
            if namespace in self._latency_ms:
                listed.append({"kind": LATENCY, "ms": self._latency_ms[namespace]})
            await respond(send, 200, json.dumps(listed).encode("utf-8"))
        elif method == "DELETE":
            self._armed.pop(namespace, None)
            self._latency_ms.pop(namespace, None)
            await respond(send, 204, None)
        elif method == "POST":
            fault = _parse_fault(await read_body(receive, _MAX_CONTROL_BYTES))
            if isinstance(fault, _Armed):
                self._armed.setdefault(namespace, []).append(fault)
            elif fault > 0:
                self._latency_ms[namespace] = fault
            else:
                self._latency_ms.pop(namespace, None)
            await respond(send, 204, None)
        else:
            raise InvalidRequest(f"Method {method} is not supported on {FAULTS_PATH}", status=405)


def _parse_fault(body: bytes) -> _Armed | float:
    """A ``drop_answer`` fault, or the delay in milliseconds of a ``latency`` one."""
    try:
        spec = json.loads(body)
    except ValueError as error:
        raise InvalidRequest("A fault is a JSON object") from error
    if isinstance(spec, dict) and spec.get("kind") == LATENCY:
        return _parse_latency(spec)
    if not isinstance(spec, dict) or spec.get("kind") != DROP_ANSWER:
        raise InvalidRequest(
            f'A fault is {{"kind": "{DROP_ANSWER}", "method", "path", "times"}}'
            f' or {{"kind": "{LATENCY}", "ms"}}'
        )
    method, path, times = spec.get("method"), spec.get("path"), spec.get("times", 1)
    if method not in _METHODS:
        raise InvalidRequest(f"method must be one of {sorted(_METHODS)}")
    if not isinstance(path, str):
        raise InvalidRequest("path must be a string such as 'a/b'")
    if isinstance(times, bool) or not isinstance(times, int) or times < 1:
        raise InvalidRequest("times must be a positive integer")
    return _Armed(method, split_path(path), times)


def _parse_latency(spec: dict[str, Any]) -> float:
    delay_ms = spec.get("ms")
    if isinstance(delay_ms, bool) or not isinstance(delay_ms, int | float):
        delay_ms = None
    if delay_ms is not None and 0 <= delay_ms <= MAX_LATENCY_MS:
        return delay_ms
    raise InvalidRequest(f"ms must be a number of milliseconds from 0 to {MAX_LATENCY_MS}")
