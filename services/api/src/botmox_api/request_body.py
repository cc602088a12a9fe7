"""Reading and validating a write's request: the body in the order of ``docs/contracts/api-v1.md``
(size 413, media type 415, JSON 400), then what the body must hold, and ``If-Match``.

The size is checked on ``Content-Length`` before anything is read and again while streaming, so a
client that lies about (or omits) the length still cannot make the server buffer more than the limit.
JSON whose strings or keys hold a lone UTF-16 surrogate (``"\\ud800"``) is malformed too: that is no
text, so no store could keep it and no answer could quote it.

A generic settings body is any JSON value but ``{}``. Because it is stored in RTDB, it must be
storable there (``model``): keys non-empty, free of ``. # $ [ ] /`` and control characters, at most
768 bytes; no value more than 29 levels below ``settings``, counting the path; finite numbers, and
integers no larger than 2^53 in magnitude (RTDB would round them). Checking here turns what RTDB
would refuse or alter into a 400. Known bounded fields are checked whether the write addresses the
parent object (``PUT /settings/alerts {"warning_days": 0}``), the field itself, or a path below the
field (which would turn it into an object). Integral floats become integers, as RTDB would store them.

A ``storage_policy`` body writes ``operational`` (``local`` | ``cloud``), ``sync.enabled`` (boolean)
and ``secrets`` (only ``local-only``); ``updated_at``, ``updated_by`` and unknown keys are ignored.

Invalid bodies are reported as zod's ``flatten()`` would (``{"formErrors": [...], "fieldErrors":
{"<dotted.path>": [...]}}``) in one 400 "Invalid request body": the legacy server used zod, and the
frontend shows its messages unchanged.
"""

from __future__ import annotations

import json
import math
import re
from typing import Final, NoReturn

from starlette.requests import Request

from botmox_api.errors import INVALID_BODY, BadRequest, PayloadTooLarge, UnsupportedMediaType
from botmox_api.model import (
    MAX_KEY_BYTES,
    MAX_LEVELS_BELOW_SETTINGS,
    MAX_SAFE_INTEGER,
    SECRETS_LOCAL_ONLY,
    IfMatch,
    JsonValue,
    Operational,
    SettingsPath,
    StoragePolicyChanges,
    is_rtdb_key,
)

# --- The JSON body: size, media type, syntax.

_JSON_MEDIA_TYPE: Final = re.compile(r"^application/(?:json|[!#$&^_.+\w-]+\+json)$")
MALFORMED_JSON: Final = "Malformed JSON body"
# The parser joins an escaped surrogate pair into one character, so any surrogate left is lone.
_SURROGATE: Final = re.compile("[\ud800-\udfff]")
# Strict UTF-8 refuses encoded surrogates, so a parsed value can hold one only through a \uD800-\uDFFF
# escape: bodies without such an escape (nearly all) skip the walk.
_SURROGATE_ESCAPE: Final = re.compile(r"\\u[dD][89a-fA-F]")


def _too_large(max_bytes: int) -> PayloadTooLarge:
    return PayloadTooLarge(f"Request body exceeds {max_bytes} bytes", details={"max_bytes": max_bytes})


def is_json_media_type(content_type: str | None) -> bool:
    if not content_type:
        return False
    media_type = content_type.split(";", 1)[0].strip().lower()
    return _JSON_MEDIA_TYPE.match(media_type) is not None


def _refuse_constant(name: str) -> NoReturn:
    # NaN and Infinity are not JSON, whatever Python's parser tolerates.
    raise ValueError(name)


def _holds_lone_surrogate(value: JsonValue) -> bool:
    # Iterative: the parser accepts nesting deeper than a recursive walk would survive.
    stack: list[JsonValue] = [value]
    while stack:
        node = stack.pop()
        if isinstance(node, str):
            if _SURROGATE.search(node):
                return True
        elif isinstance(node, dict):
            if any(_SURROGATE.search(key) for key in node):
                return True
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
    return False


async def read_json_body(request: Request, max_bytes: int) -> JsonValue:
    declared = request.headers.get("content-length")
    if declared is not None and declared.strip().isdigit() and int(declared) > max_bytes:
        raise _too_large(max_bytes)
    buffer = bytearray()
    async for chunk in request.stream():
        buffer += chunk
        if len(buffer) > max_bytes:
            raise _too_large(max_bytes)
    if not is_json_media_type(request.headers.get("content-type")):
        raise UnsupportedMediaType("Content-Type must be application/json")
    try:
        text = bytes(buffer).decode("utf-8")
        value: JsonValue = json.loads(text, parse_constant=_refuse_constant)
    except (ValueError, RecursionError):
        raise BadRequest(MALFORMED_JSON) from None
    if _SURROGATE_ESCAPE.search(text) and _holds_lone_surrogate(value):
        raise BadRequest(MALFORMED_JSON)
    return value


# --- zod-like issues.


def received_type(value: object) -> str:
    """zod's name for a JSON value's type."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


class Issues:
    def __init__(self) -> None:
        self.form: list[str] = []
        self.fields: dict[str, list[str]] = {}

    def add(self, path: tuple[str, ...], message: str) -> None:
        if path:
            self.fields.setdefault(".".join(path), []).append(message)
        else:
            self.form.append(message)

    def __bool__(self) -> bool:
        return bool(self.form or self.fields)

    def error(self) -> BadRequest:
        return BadRequest(INVALID_BODY, details={"formErrors": self.form, "fieldErrors": self.fields})

    def raise_if_any(self) -> None:
        if self:
            raise self.error()


def form_error(message: str) -> BadRequest:
    issues = Issues()
    issues.add((), message)
    return issues.error()


def check_integer_range(
    value: JsonValue, minimum: int, maximum: int, issues: Issues, path: tuple[str, ...]
) -> None:
    """``z.number().int().min(minimum).max(maximum)``: a JSON number without a fractional part."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        issues.add(path, f"Expected number, received {received_type(value)}")
        return
    if isinstance(value, float) and not value.is_integer():
        issues.add(path, "Expected integer, received float")
    if value < minimum:
        issues.add(path, f"Number must be greater than or equal to {minimum}")
    elif value > maximum:
        issues.add(path, f"Number must be less than or equal to {maximum}")


# --- A generic settings body.

TOO_DEEP: Final = f"Payload nested too deeply (max {MAX_LEVELS_BELOW_SETTINGS} levels below settings)"
OUT_OF_RANGE: Final = "Number out of range (max ±2^53)"

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
    return is_rtdb_key(key) and len(key.encode("utf-8", "surrogatepass")) <= MAX_KEY_BYTES


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


# --- A storage_policy body and If-Match.

WRITABLE_FIELDS: Final = ("operational", "sync", "secrets")
_OPERATIONAL: Final[tuple[Operational, ...]] = ("local", "cloud")
_OPERATIONAL_EXPECTED: Final = " | ".join(f"'{value}'" for value in _OPERATIONAL)


def validate_storage_policy_body(body: JsonValue) -> StoragePolicyChanges:
    """The validated changes; raises ``BadRequest`` with zod-like details."""
    if not isinstance(body, dict):
        raise form_error(f"Expected object, received {received_type(body)}")
    if not any(name in body for name in WRITABLE_FIELDS):
        raise form_error("Storage policy payload must not be empty")
    issues = Issues()
    operational: Operational | None = None
    sync_enabled: bool | None = None
    if "operational" in body:
        value = body["operational"]
        if value == "local":
            operational = "local"
        elif value == "cloud":
            operational = "cloud"
        elif isinstance(value, str):
            issues.add(
                ("operational",), f"Invalid enum value. Expected {_OPERATIONAL_EXPECTED}, received '{value}'"
            )
        else:
            issues.add(("operational",), f"Expected {_OPERATIONAL_EXPECTED}, received {received_type(value)}")
    if "sync" in body:
        sync = body["sync"]
        if not isinstance(sync, dict):
            issues.add(("sync",), f"Expected object, received {received_type(sync)}")
        elif "enabled" not in sync:
            issues.add(("sync", "enabled"), "Required")
        elif isinstance(sync["enabled"], bool):
            sync_enabled = sync["enabled"]
        else:
            issues.add(("sync", "enabled"), f"Expected boolean, received {received_type(sync['enabled'])}")
    if "secrets" in body and body["secrets"] != SECRETS_LOCAL_ONLY:
        issues.add(("secrets",), f'Invalid literal value, expected "{SECRETS_LOCAL_ONLY}"')
    issues.raise_if_any()
    return StoragePolicyChanges(operational=operational, sync_enabled=sync_enabled)


# Versions are SQL bigints (and far below that in RTDB): a larger number names no stored version,
# and the SQL store must never be asked for one it cannot hold.
MAX_VERSION: Final = 2**63 - 1


def etag_of(version: int) -> str:
    return f'"{version}"'


def _version_named_by(tag: str) -> int | None:
    """The version whose ETag is exactly ``tag``, character for character (``"01"`` names none)."""
    inner = tag[1:-1]
    if not (inner.isascii() and inner.isdigit()) or len(inner) > len(str(MAX_VERSION)):
        return None
    version = int(inner)
    if version > MAX_VERSION or etag_of(version) != tag:
        return None
    return version


def parse_if_match(values: list[str]) -> IfMatch | None:
    """``None`` without the header. ``*`` matches any stored version; strong tags only (``W/`` never
    matches); a tag that is not exactly the ETag of a version a store can hold is kept out, so it never
    matches, and an empty header names no version at all, so it matches nothing."""
    if not values:
        return None
    versions: set[int] = set()
    any_version = False
    for value in values:
        for raw in value.split(","):
            tag = raw.strip()
            if tag == "*":
                any_version = True
            elif (version := _version_named_by(tag)) is not None:
                versions.add(version)
    return IfMatch(versions=frozenset(versions), any_version=any_version)
