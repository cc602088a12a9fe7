"""Settings path normalisation and its rules (``docs/contracts/api-v1.md``, "Path rules").

Trim, strip ``/`` at both ends, split on ``/``, drop one leading ``settings`` segment (the frontend
calls ``/api/v1/settings/settings/...``). The first failing rule gives the reason, in this order:
a bad segment, too many segments, too many bytes; then ``storage_policy`` is one document.
"""

from __future__ import annotations

import re
from typing import Final

from botmox_api.errors import BadRequest
from botmox_api.model import MAX_LEVELS_BELOW_SETTINGS

MAX_SEGMENTS: Final = MAX_LEVELS_BELOW_SETTINGS
MAX_PATH_BYTES: Final = 768
STORAGE_POLICY: Final = "storage_policy"
_BAD_SEGMENT: Final = re.compile(r"[.#$\[\]\x00-\x1f\x7f]")

# What JavaScript's String.prototype.trim removes (the legacy server trimmed with it). Python's
# str.strip() would also remove \x1c-\x1f and \x85, which are control characters, refused here.
JS_WHITESPACE: Final = (
    "\t\n\v\f\r \u00a0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a"
    "\u2028\u2029\u202f\u205f\u3000\ufeff"
)

SettingsPath = tuple[str, ...]


def _invalid(received: str, reason: str) -> BadRequest:
    return BadRequest("Invalid settings path", details={"path": received, "reason": reason})


def _segment_ok(segment: str) -> bool:
    # "." and ".." are covered by the "." rule; spelled out for the reader.
    return bool(segment) and segment not in (".", "..") and _BAD_SEGMENT.search(segment) is None


def normalise_settings_path(received: str) -> SettingsPath:
    """The segments below ``settings``; ``()`` is the whole tree. Raises ``BadRequest``."""
    stripped = received.strip(JS_WHITESPACE).strip("/")
    if not stripped:
        return ()
    segments = stripped.split("/")
    if segments[0] == "settings":
        segments = segments[1:]
    for segment in segments:
        if not _segment_ok(segment):
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
    return received.strip(JS_WHITESPACE).strip("/") in ("", "settings")
