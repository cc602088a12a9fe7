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
- ``GET /.harness/faults?ns=NS``: the armed faults not used up yet,
  ``[{"kind", "method", "path", "remaining"}]``.
- ``DELETE /.harness/faults?ns=NS``: disarms every fault of the namespace.

The client side that tests use is ``harness.fixtures.rtdb.EmulatorFaults`` (fixture ``rtdb_faults``):
this module is part of the emulator, whose image holds the standard library and uvicorn only.
"""

from __future__ import annotations

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
            await respond(send, 200, json.dumps(listed).encode("utf-8"))
        elif method == "DELETE":
            self._armed.pop(namespace, None)
            await respond(send, 204, None)
        elif method == "POST":
            fault = _parse_fault(await read_body(receive, _MAX_CONTROL_BYTES))
            self._armed.setdefault(namespace, []).append(fault)
            await respond(send, 204, None)
        else:
            raise InvalidRequest(f"Method {method} is not supported on {FAULTS_PATH}", status=405)


def _parse_fault(body: bytes) -> _Armed:
    try:
        spec = json.loads(body)
    except ValueError as error:
        raise InvalidRequest("A fault is a JSON object") from error
    if not isinstance(spec, dict) or spec.get("kind") != DROP_ANSWER:
        raise InvalidRequest(f'A fault is {{"kind": "{DROP_ANSWER}", "method", "path", "times"}}')
    method, path, times = spec.get("method"), spec.get("path"), spec.get("times", 1)
    if method not in _METHODS:
        raise InvalidRequest(f"method must be one of {sorted(_METHODS)}")
    if not isinstance(path, str):
        raise InvalidRequest("path must be a string such as 'a/b'")
    if isinstance(times, bool) or not isinstance(times, int) or times < 1:
        raise InvalidRequest("times must be a positive integer")
    return _Armed(method, split_path(path), times)
