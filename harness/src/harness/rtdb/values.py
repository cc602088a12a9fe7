"""JSON values the RTDB way: how written bodies are normalised and how stored nodes are served.

Stored nodes never contain ``null``, empty objects or arrays: an array is stored as an object keyed
"0", "1", ... and served back as an array when its keys look like one (RTDB's rule: every key a
non-negative integer and more than half of the slots up to the largest key filled).
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeAlias

from harness.rtdb.keys import MAX_DEPTH, InvalidRequest, check_key

Node: TypeAlias = "dict[str, Node] | str | int | float | bool"
Served: TypeAlias = "bool | int | float | str | list[Served] | dict[str, Served] | None"

NULL_ETAG = "null_etag"
_ARRAY_INDEX = re.compile(r"0|[1-9][0-9]{0,9}")
_MAX_ARRAY_INDEX = 2**31 - 1
_EXACT_FLOAT_LIMIT = 2**53
PARSE_ERROR = "Invalid data; couldn't parse JSON object, array, or value."


def _reject_constant(name: str) -> object:
    raise ValueError(f"{name} is not JSON")


def parse_body(body: bytes) -> object:
    """The JSON value of a request body; RTDB's 400 when it is not strict JSON."""
    try:
        return json.loads(body.decode("utf-8"), parse_constant=_reject_constant)
    except (UnicodeDecodeError, ValueError, RecursionError) as error:
        raise InvalidRequest(PARSE_ERROR) from error


@dataclass(frozen=True, slots=True)
class ServerValues:
    """What ``{".sv": ...}`` placeholders resolve against: the write's clock and current data."""

    now_ms: int
    current: Callable[[tuple[str, ...]], Node | None]


def normalize(raw: object, at: tuple[str, ...], server: ServerValues) -> Node | None:
    """The stored form of a written JSON value at path ``at``; raises InvalidRequest on bad input.

    Nothing is stored by this function, so a rejected body leaves the tree untouched.
    """
    if raw is None or isinstance(raw, bool):
        return raw
    if isinstance(raw, int):
        return raw
    if isinstance(raw, float):
        # JSON numbers are doubles in RTDB: 1.0 and 1 are the same value and are served as 1.
        if raw.is_integer() and abs(raw) <= _EXACT_FLOAT_LIMIT:
            return int(raw)
        return raw
    if isinstance(raw, str):
        _check_text(raw)
        return raw
    if len(at) > MAX_DEPTH:
        raise InvalidRequest(f"Invalid data; data is nested deeper than {MAX_DEPTH} levels")
    if isinstance(raw, list):
        items: dict[str, object] = {str(index): item for index, item in enumerate(raw)}
        return _normalize_object(items, at, server)
    if isinstance(raw, dict):
        if ".sv" in raw:
            return _server_value(raw, at, server)
        return _normalize_object(raw, at, server)
    raise InvalidRequest(PARSE_ERROR)


def _normalize_object(raw: dict[str, object], at: tuple[str, ...], server: ServerValues) -> Node | None:
    stored: dict[str, Node] = {}
    for key, item in raw.items():
        if key in (".priority", ".value"):
            raise InvalidRequest(f"Invalid data; {key} is not supported by this emulator")
        check_key(key)
        child = normalize(item, (*at, key), server)
        if child is not None:
            stored[key] = child
    return stored or None


def _server_value(raw: dict[str, object], at: tuple[str, ...], server: ServerValues) -> Node:
    if len(raw) != 1:
        raise InvalidRequest("Invalid data; .sv cannot be mixed with other keys")
    spec = raw[".sv"]
    if spec == "timestamp":
        return server.now_ms
    if isinstance(spec, dict) and set(spec) == {"increment"}:
        delta = spec["increment"]
        if isinstance(delta, bool) or not isinstance(delta, int | float):
            raise InvalidRequest("Invalid data; increment must be a number")
        current = server.current(at)
        if isinstance(current, bool) or not isinstance(current, int | float):
            current = 0
        total = normalize(current + delta, at, server)
        assert total is not None
        return total
    raise InvalidRequest("Invalid data; unsupported server value")


def _check_text(text: str) -> None:
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError as error:
            raise InvalidRequest(PARSE_ERROR) from error


def render(node: Node | None) -> Served:
    """The value RTDB serves for a stored node: array-like objects become arrays."""
    if not isinstance(node, dict):
        return node
    as_array = _array_length(node)
    if as_array is None:
        return {key: render(child) for key, child in node.items()}
    slots: list[Served] = [None] * as_array
    for key, child in node.items():
        slots[int(key)] = render(child)
    return slots


def _array_length(node: dict[str, Node]) -> int | None:
    largest = -1
    for key in node:
        if _ARRAY_INDEX.fullmatch(key) is None:
            return None
        index = int(key)
        if index > _MAX_ARRAY_INDEX:
            return None
        largest = max(largest, index)
    if largest < 2 * len(node):
        return largest + 1
    return None


def shallow(node: Node | None) -> Served:
    """``shallow=true``: an object's children are truncated to ``true``; primitives as they are."""
    if isinstance(node, dict):
        return dict.fromkeys(node, True)
    return node


def encode(value: Served) -> bytes:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def etag(node: Node | None) -> str:
    """A hash of the served value; RTDB's documented constant for a null location."""
    if node is None:
        return NULL_ETAG
    canonical = json.dumps(render(node), ensure_ascii=False, separators=(",", ":"), sort_keys=True)
    return base64.b64encode(hashlib.sha1(canonical.encode("utf-8")).digest()).decode("ascii")  # noqa: S324
