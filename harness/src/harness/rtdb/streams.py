"""Streaming listeners (``Accept: text/event-stream``): which events a write produces for whom.

A listener at path L receives, for a write:
- at or below L: ``put`` at the written path relative to L (a PATCH at or below L whose keys are
  all direct children becomes one ``patch`` event, as RTDB sends it);
- above L: one ``put`` at ``/`` with the new value at L, only when that value changed.
Events are formatted when the write happens (the tree is mutated in place later) and carry the
write's generation, so a stream never shows a write before it is durable.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field

from harness.rtdb.keys import is_prefix, path_string
from harness.rtdb.tree import Database, Path, Write
from harness.rtdb.values import Node, Served, render

KEEP_ALIVE = b"event: keep-alive\ndata: null\n\n"


def sse_event(event: str, path: Path, data: Served) -> bytes:
    body = json.dumps({"path": path_string(path), "data": data}, ensure_ascii=False, separators=(",", ":"))
    return f"event: {event}\ndata: {body}\n\n".encode()


@dataclass(frozen=True, slots=True)
class StreamItem:
    generation: int
    payload: bytes


@dataclass(eq=False, slots=True)
class Subscription:
    namespace: str
    path: Path
    queue: asyncio.Queue[StreamItem | None] = field(default_factory=asyncio.Queue)


class StreamsClosed(Exception):
    """The server is shutting down and accepts no new listeners."""


class ListenerHub:
    def __init__(self) -> None:
        self._by_namespace: dict[str, set[Subscription]] = {}
        self._closed = False

    def subscribe(self, namespace: str, path: Path) -> Subscription:
        if self._closed:
            raise StreamsClosed
        subscription = Subscription(namespace, path)
        self._by_namespace.setdefault(namespace, set()).add(subscription)
        return subscription

    def unsubscribe(self, subscription: Subscription) -> None:
        listeners = self._by_namespace.get(subscription.namespace)
        if listeners is not None:
            listeners.discard(subscription)
            if not listeners:
                del self._by_namespace[subscription.namespace]

    def close(self) -> None:
        """End every stream (server shutdown): each stream's generator returns after its queue."""
        self._closed = True
        for listeners in self._by_namespace.values():
            for subscription in listeners:
                subscription.queue.put_nowait(None)

    def capture_before(self, write: Write, database: Database) -> dict[Subscription, Node | None]:
        """The current values of listeners that sit below a written path (to detect no-ops)."""
        before: dict[Subscription, Node | None] = {}
        for subscription in self._by_namespace.get(write.namespace, ()):
            if any(
                len(path) < len(subscription.path) and is_prefix(path, subscription.path)
                for path, _ in write.absolute_updates()
            ):
                before[subscription] = database.get(write.namespace, subscription.path)
        return before

    def publish(
        self,
        write: Write,
        before: dict[Subscription, Node | None],
        database: Database,
        generation: int,
    ) -> None:
        for subscription in self._by_namespace.get(write.namespace, ()):
            for payload in _events_for(subscription, write, before, database):
                subscription.queue.put_nowait(StreamItem(generation, payload))


def _events_for(
    subscription: Subscription,
    write: Write,
    before: dict[Subscription, Node | None],
    database: Database,
) -> list[bytes]:
    listen = subscription.path
    if (
        write.is_patch
        and is_prefix(listen, write.base)
        and all(len(relative) == 1 for relative, _ in write.updates)
    ):
        data = {relative[0]: render(value) for relative, value in write.updates}
        return [sse_event("patch", write.base[len(listen) :], data)]
    events: list[bytes] = []
    for path, value in write.absolute_updates():
        if is_prefix(listen, path):
            events.append(sse_event("put", path[len(listen) :], render(value)))
    if subscription in before:
        current = database.get(write.namespace, listen)
        if current != before[subscription]:
            events.append(sse_event("put", (), render(current)))
    return events
