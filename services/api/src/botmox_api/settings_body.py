"""Validation of a generic settings write (every path but ``storage_policy``).

The body is any JSON value but ``{}``. Because it is stored in RTDB, it must be storable there:
keys non-empty, free of ``. # $ [ ] /`` and control characters, at most 768 bytes; at most 32
levels deep from the RTDB root, counting the path; finite numbers. Checking here turns what RTDB
would refuse (a 502) into a 400 that names the field. Known bounded fields are checked whether
the write addresses the parent object (``PUT /settings/alerts {"warning_days": 0}``) or the
field itself. Integral floats become integers, as RTDB would store them.
"""

from __future__ import annotations

import math
import re
from typing import Final

from botmox_api.settings_path import SettingsPath
from botmox_api.stores.protocols import JsonValue
from botmox_api.validation import Issues, check_integer_range, form_error

# RTDB refuses data nested deeper than 32 levels from its root; a tenant's settings start three
# levels down (tenants/{tenant_id}/settings).
MAX_DEPTH: Final = 32 - 3
MAX_KEY_BYTES: Final = 768
# Integral floats beyond this are left alone: they are not exactly integers in a double anyway.
_MAX_SAFE_INTEGER: Final = 2**53
_BAD_KEY: Final = re.compile(r"[.#$\[\]/\x00-\x1f\x7f]")

BOUNDED_FIELDS: Final[dict[SettingsPath, tuple[int, int]]] = {
    ("alerts", "warning_days"): (1, 365),
    ("proxy", "fraud_score_threshold"): (0, 100),
    ("proxy", "check_interval_hours"): (0, 168),
}
_BOUNDED_PARENTS: Final = frozenset(path[:-1] for path in BOUNDED_FIELDS)


def _depth(value: JsonValue) -> int:
    """Nesting depth, iteratively (a hostile body may be nested deeper than Python recursion)."""
    deepest = 0
    stack: list[tuple[JsonValue, int]] = [(value, 0)]
    while stack:
        node, level = stack.pop()
        deepest = max(deepest, level)
        if deepest > MAX_DEPTH:
            break
        if isinstance(node, dict):
            stack.extend((child, level + 1) for child in node.values())
        elif isinstance(node, list):
            stack.extend((child, level + 1) for child in node)
    return deepest


def _key_ok(key: str) -> bool:
    return (
        bool(key)
        and _BAD_KEY.search(key) is None
        and len(key.encode("utf-8", "surrogatepass")) <= MAX_KEY_BYTES
    )


def _normalise(value: JsonValue, issues: Issues, at: tuple[str, ...]) -> JsonValue:
    if isinstance(value, float):
        if not math.isfinite(value):
            issues.add(at, "Number must be finite")
            return value
        if value.is_integer() and abs(value) <= _MAX_SAFE_INTEGER:
            return int(value)
        return value
    if isinstance(value, dict):
        out: dict[str, JsonValue] = {}
        for key, child in value.items():
            if not _key_ok(key):
                issues.add(
                    (*at, key),
                    "Invalid key: must be non-empty, at most 768 bytes, "
                    "without . # $ [ ] / or control characters",
                )
                continue
            out[key] = _normalise(child, issues, (*at, key))
        return out
    if isinstance(value, list):
        return [_normalise(child, issues, (*at, str(index))) for index, child in enumerate(value)]
    return value


def _check_bounds(path: SettingsPath, body: JsonValue, issues: Issues) -> None:
    bounds = BOUNDED_FIELDS.get(path)
    if bounds is not None and body is not None:
        check_integer_range(body, bounds[0], bounds[1], issues, ())
    if path in _BOUNDED_PARENTS and isinstance(body, dict):
        for key, child in body.items():
            field_bounds = BOUNDED_FIELDS.get((*path, key))
            if field_bounds is not None and child is not None:  # null deletes, like any field
                check_integer_range(child, field_bounds[0], field_bounds[1], issues, (key,))


def validate_settings_body(path: SettingsPath, body: JsonValue) -> JsonValue:
    """The body to store; raises ``BadRequest`` with zod-like details."""
    if isinstance(body, dict) and not body:
        raise form_error("Payload must contain at least one field")
    if len(path) + _depth(body) > MAX_DEPTH:
        raise form_error(f"Payload is nested too deeply (max {MAX_DEPTH} levels including the path)")
    issues = Issues()
    normalised = _normalise(body, issues, ())
    _check_bounds(path, normalised, issues)
    issues.raise_if_any()
    return normalised
