"""Validation of a generic settings write (every path but ``storage_policy``).

The body is any JSON value but ``{}``. Because it is stored in RTDB, it must be storable there
(``rtdb_limits``): keys non-empty, free of ``. # $ [ ] /`` and control characters, at most 768
bytes; no value more than 29 levels below ``settings``, counting the path; finite numbers, and
integers no larger than 2^53 in magnitude (RTDB would round them). Checking here turns what RTDB
would refuse or alter into a 400. Known bounded fields are checked whether the write addresses the
parent object (``PUT /settings/alerts {"warning_days": 0}``), the field itself, or a path below the
field (which would turn it into an object). Integral floats become integers, as RTDB would store them.
"""

from __future__ import annotations

import math
import re
from typing import Final

from botmox_api.model import MAX_KEY_BYTES, MAX_LEVELS_BELOW_SETTINGS, MAX_SAFE_INTEGER, JsonValue
from botmox_api.settings_path import SettingsPath
from botmox_api.validation import Issues, check_integer_range, form_error

TOO_DEEP: Final = f"Payload nested too deeply (max {MAX_LEVELS_BELOW_SETTINGS} levels below settings)"
OUT_OF_RANGE: Final = "Number out of range (max ±2^53)"
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
        if deepest > MAX_LEVELS_BELOW_SETTINGS:
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
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) > MAX_SAFE_INTEGER:
        if OUT_OF_RANGE not in issues.form:  # one form error however many numbers are out of range
            issues.add((), OUT_OF_RANGE)
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            issues.add(at, "Number must be finite")
            return value
        # Beyond 2^53 an integral float is not exactly an integer anyway: left a float.
        if value.is_integer() and abs(value) <= MAX_SAFE_INTEGER:
            return int(value)
        return value
    if isinstance(value, dict):
        out: dict[str, JsonValue] = {}
        for key, child in value.items():
            if not _key_ok(key):
                issues.add(
                    (*at, key),
                    f"Invalid key: must be non-empty, at most {MAX_KEY_BYTES} bytes, "
                    "without . # $ [ ] / or control characters",
                )
                continue
            out[key] = _normalise(child, issues, (*at, key))
        return out
    if isinstance(value, list):
        return [_normalise(child, issues, (*at, str(index))) for index, child in enumerate(value)]
    return value


def _check_bounds(path: SettingsPath, body: JsonValue, issues: Issues) -> None:
    for length in range(1, len(path)):
        above = BOUNDED_FIELDS.get(path[:length])
        if above is not None:
            # A write below a bounded field would make the field an object: refused with the error
            # that writing that object to the field directly gets.
            check_integer_range({path[length]: body}, above[0], above[1], issues, ())
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
    if len(path) + _depth(body) > MAX_LEVELS_BELOW_SETTINGS:
        raise form_error(TOO_DEEP)
    issues = Issues()
    normalised = _normalise(body, issues, ())
    _check_bounds(path, normalised, issues)
    issues.raise_if_any()
    return normalised
