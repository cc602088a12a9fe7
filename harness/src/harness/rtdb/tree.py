"""The data: one tree of stored nodes per namespace, kept strictly apart.

Every method is synchronous and runs on the server's event loop, so each write (a multi-location
PATCH included) is atomic with respect to every other request without any lock.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from harness.rtdb.values import Node

Path = tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Write:
    """One acknowledged change: values (already normalised) at paths relative to ``base``.

    A PUT, POST or DELETE has a single update at the relative path ``()``; a PATCH has one update
    per (possibly multi-segment) key, none of which overlaps another.
    """

    namespace: str
    base: Path
    updates: tuple[tuple[Path, Node | None], ...]
    is_patch: bool

    def absolute_updates(self) -> Iterable[tuple[Path, Node | None]]:
        for relative, value in self.updates:
            yield (*self.base, *relative), value


class Database:
    def __init__(self) -> None:
        self._roots: dict[str, Node] = {}

    def get(self, namespace: str, path: Path) -> Node | None:
        node: Node | None = self._roots.get(namespace)
        for segment in path:
            if not isinstance(node, dict):
                return None
            node = node.get(segment)
        return node

    def apply(self, write: Write) -> None:
        root: Node | None = self._roots.get(write.namespace)
        for path, value in write.absolute_updates():
            root = _assign(root, path, 0, value)
        if root is None:
            self._roots.pop(write.namespace, None)
        else:
            self._roots[write.namespace] = root

    def dump(self) -> dict[str, Node]:
        """Every namespace's tree (live objects: serialise before the next write)."""
        return self._roots

    def load(self, roots: Mapping[str, Node]) -> None:
        self._roots = dict(roots)


def _assign(node: Node | None, path: Path, depth: int, value: Node | None) -> Node | None:
    """The node after writing ``value`` at ``path[depth:]`` below it; None once it is empty."""
    if depth == len(path):
        return value
    if not isinstance(node, dict):
        if value is None:
            # Nothing exists below a leaf or a null, so deleting there changes nothing.
            return node
        node = {}
    key = path[depth]
    child = _assign(node.get(key), path, depth + 1, value)
    if child is None:
        node.pop(key, None)
    else:
        node[key] = child
    return node or None
