"""Settings paths (``docs/contracts/api-v1.md``, "Path rules"): the parser, the URL convertor that
brings every path to it, and the OpenAPI pattern that states the same rules.

Trim, strip ``/`` at both ends, split on ``/``, drop one leading ``settings`` segment (the frontend
calls ``/api/v1/settings/settings/...``). The first failing rule gives the reason, in this order:
a bad segment, too many segments, too many bytes; then ``storage_policy`` is one document.

The OpenAPI pattern is built from the same constants as the parser; a test holds them to accepting
exactly the same paths (``tests/test_settings_path.py``).
"""

from __future__ import annotations

from typing import Final

from starlette.convertors import Convertor, register_url_convertor

from botmox_api.errors import BadRequest
from botmox_api.model import MAX_LEVELS_BELOW_SETTINGS, RTDB_KEY_FORBIDDEN, SettingsPath, is_rtdb_key

MAX_SEGMENTS: Final = MAX_LEVELS_BELOW_SETTINGS
MAX_PATH_BYTES: Final = 768
SETTINGS: Final = "settings"
STORAGE_POLICY: Final = "storage_policy"

# What JavaScript's String.prototype.trim removes (the legacy server trimmed with it). Python's
# str.strip() would also remove \x1c-\x1f and \x85, which are control characters, refused here.
JS_WHITESPACE: Final = (
    "\t\n\v\f\r \u00a0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a"
    "\u2028\u2029\u202f\u205f\u3000\ufeff"
)


def _invalid(received: str, reason: str) -> BadRequest:
    return BadRequest("Invalid settings path", details={"path": received, "reason": reason})


def normalise_settings_path(received: str) -> SettingsPath:
    """The segments below ``settings``; ``()`` is the whole tree. Raises ``BadRequest``."""
    stripped = received.strip(JS_WHITESPACE).strip("/")
    if not stripped:
        return ()
    segments = stripped.split("/")
    if segments[0] == SETTINGS:
        segments = segments[1:]
    for segment in segments:
        if not is_rtdb_key(segment):
            raise _invalid(received, f"Invalid path segment: {segment}")
    if len(segments) > MAX_SEGMENTS:
        raise _invalid(received, f"Too many path segments (max {MAX_SEGMENTS})")
    if len("/".join(segments).encode("utf-8", "surrogatepass")) > MAX_PATH_BYTES:
        raise _invalid(received, f"Path too long (max {MAX_PATH_BYTES} bytes)")
    if len(segments) > 1 and segments[0] == STORAGE_POLICY:
        raise _invalid(received, "storage_policy is written as a whole document")
    return tuple(segments)


def is_whole_tree(received: str) -> bool:
    """Whether a path names the whole tree, without raising (used to answer 405 ``Allow: GET``)."""
    return received.strip(JS_WHITESPACE).strip("/") in ("", SETTINGS)


# The OpenAPI pattern of the ``{settings_path}`` parameter: every path the parser accepts but the
# whole tree and ``storage_policy``, which have operations of their own. Byte lengths are beyond a
# pattern; the schema's ``maxLength`` states the bound in characters.
_WS: Final = "[" + "".join(f"\\u{ord(c):04x}" for c in JS_WHITESPACE) + "]*"
_SEGMENT: Final = f"[^{RTDB_KEY_FORBIDDEN}]+"
_SEGMENTS: Final = rf"{_SEGMENT}(/{_SEGMENT}){{0,{MAX_SEGMENTS - 1}}}"
_NOT_WHOLE_TREE: Final = rf"(?!{_WS}/*({SETTINGS}/*)?{_WS}$)"
_NOT_STORAGE_POLICY: Final = rf"(?!{_WS}/*({SETTINGS}/+)?{STORAGE_POLICY}(/|{_WS}$))"
SETTINGS_PATH_PATTERN: Final = (
    rf"^{_NOT_WHOLE_TREE}{_NOT_STORAGE_POLICY}{_WS}/*({SETTINGS}/)?{_SEGMENTS}/*{_WS}$"
)


class SettingsPathConvertor(Convertor[str]):
    """Starlette's ``path`` convertor is ``.*``, which stops at a newline, so ``/settings/a%0Ab`` would
    be an unknown route (404) instead of an invalid settings path (400 "Invalid path segment"). This
    one matches control characters too, so every path reaches the rules above."""

    name: Final = "settings_path"
    regex = r"[\s\S]*"

    def convert(self, value: str) -> str:
        return value

    def to_string(self, value: str) -> str:
        return value


def register_convertor() -> None:
    """Starlette keeps convertors in one registry; registering under our own name is idempotent and
    affects nothing else. The app factory calls it before the routes are built."""
    register_url_convertor(SettingsPathConvertor.name, SettingsPathConvertor())
