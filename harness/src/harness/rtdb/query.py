"""Filtered reads: ``orderBy`` with ``startAt``/``endAt``/``equalTo``/``limitToFirst``/``limitToLast``.

Ordering follows RTDB's documented rules: for ``$value`` and a child path, null, then false, true,
numbers ascending, strings lexicographically, objects last, ties broken by key; for ``$key``,
keys that are 32-bit integers first (numerically), then the others lexicographically. Unlike
production RTDB no ``.indexOn`` rule is required (the official emulator does not require one either).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TypeAlias

from harness.rtdb.keys import InvalidRequest
from harness.rtdb.values import Node

QUERY_PARAMS = ("orderBy", "startAt", "endAt", "equalTo", "limitToFirst", "limitToLast")
_INTEGER_KEY = re.compile(r"-?(0|[1-9][0-9]{0,9})")
_INT32 = (-(2**31), 2**31 - 1)
SortKey: TypeAlias = "tuple[int, int | float | str, tuple[int, int | str]]"


@dataclass(frozen=True, slots=True)
class Query:
    order_by: str
    start_at: object = None
    end_at: object = None
    has_start: bool = False
    has_end: bool = False
    limit_first: int | None = None
    limit_last: int | None = None


def parse_query(params: Mapping[str, str]) -> Query | None:
    """The query a GET asks for, or None for a plain read; RTDB-style 400s on malformed input."""
    if not any(name in params for name in QUERY_PARAMS):
        return None
    if "orderBy" not in params:
        raise InvalidRequest("orderBy must be defined when other query parameters are defined")
    order_by = _json_param(params, "orderBy")
    if not isinstance(order_by, str) or not order_by:
        raise InvalidRequest("orderBy must be a valid JSON encoded path")
    if order_by == "$priority":
        raise InvalidRequest("orderBy $priority is not supported by this emulator")
    start, end = params.get("startAt"), params.get("endAt")
    if "equalTo" in params:
        if start is not None or end is not None:
            raise InvalidRequest("equalTo cannot be specified in addition to startAt or endAt")
        start = end = params["equalTo"]
    limit_first = _limit(params, "limitToFirst")
    limit_last = _limit(params, "limitToLast")
    if limit_first is not None and limit_last is not None:
        raise InvalidRequest("limitToFirst and limitToLast cannot both be specified")
    return Query(
        order_by=order_by,
        start_at=_json_value(start, "startAt") if start is not None else None,
        end_at=_json_value(end, "endAt") if end is not None else None,
        has_start=start is not None,
        has_end=end is not None,
        limit_first=limit_first,
        limit_last=limit_last,
    )


def run_query(node: Node | None, query: Query) -> Node | None:
    """The children of ``node`` the query selects (a primitive comes back unchanged)."""
    if not isinstance(node, dict):
        return node
    by_key = query.order_by == "$key"
    if by_key and any(
        bound is not None and not isinstance(bound, str) for bound in (query.start_at, query.end_at)
    ):
        raise InvalidRequest("startAt, endAt and equalTo must be strings when ordering by $key")
    ranked = sorted((_sort_key(key, child, query.order_by), key) for key, child in node.items())
    lower = _bound_key(query.start_at, by_key) if query.has_start else None
    upper = _bound_key(query.end_at, by_key) if query.has_end else None
    selected = [
        key
        for sort_key, key in ranked
        if (lower is None or sort_key[:2] >= lower) and (upper is None or sort_key[:2] <= upper)
    ]
    if query.limit_first is not None:
        selected = selected[: query.limit_first]
    if query.limit_last is not None:
        selected = selected[len(selected) - query.limit_last :] if query.limit_last else []
    return {key: node[key] for key in selected} or None


def _sort_key(key: str, child: Node, order_by: str) -> SortKey:
    key_rank = _key_rank(key)
    if order_by == "$key":
        return (key_rank[0], key_rank[1], key_rank)
    indexed: Node | None = child if order_by == "$value" else _child_at(child, order_by)
    rank, value = _value_rank(indexed, key)
    return (rank, value, key_rank)


def _bound_key(bound: object, by_key: bool) -> tuple[int, int | float | str]:
    if by_key:
        assert isinstance(bound, str)
        return _key_rank(bound)
    if isinstance(bound, dict | list):
        raise InvalidRequest("startAt, endAt and equalTo must be primitives")
    return _value_rank(bound, "")


def _key_rank(key: str) -> tuple[int, int | str]:
    if _INTEGER_KEY.fullmatch(key) and _INT32[0] <= int(key) <= _INT32[1]:
        return (0, int(key))
    return (1, key)


def _value_rank(value: object, key: str) -> tuple[int, int | float | str]:
    if value is None:
        return (0, 0)
    if value is False:
        return (1, 0)
    if value is True:
        return (2, 0)
    if isinstance(value, int | float):
        return (3, value)
    if isinstance(value, str):
        return (4, value)
    return (5, key)


def _child_at(node: Node, path: str) -> Node | None:
    current: Node | None = node
    for segment in (part for part in path.split("/") if part):
        if not isinstance(current, dict):
            return None
        current = current.get(segment)
    return current


def _json_param(params: Mapping[str, str], name: str) -> object:
    return _json_value(params[name], name)


def _json_value(raw: str, name: str) -> object:
    try:
        return json.loads(raw)
    except ValueError as error:
        raise InvalidRequest(f"{name} must be a valid JSON value") from error


def _limit(params: Mapping[str, str], name: str) -> int | None:
    raw = params.get(name)
    if raw is None:
        return None
    if not raw.isdigit():
        raise InvalidRequest(f"{name} must be a non-negative integer")
    return int(raw)
