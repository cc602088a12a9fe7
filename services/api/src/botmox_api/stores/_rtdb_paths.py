"""Tenant-scoped RTDB paths: ``tenants/{tenant_id}/settings/{path}``.

The API validates tenant ids and settings paths before a store sees them; this module re-checks
the few characters that would let a value escape its tenant node (``/``, ``.`` segments, RTDB's
forbidden characters), because a wrong path here would write into another tenant.

Paths travel in the URL of RTDB's REST protocol, which percent-decodes them, so every segment is
percent-encoded here: the key ``a%20b`` must be stored as ``a%20b``, not ``a b``, and a ``?`` must
stay part of the key instead of starting a query string.
"""

from __future__ import annotations

import re
from typing import Final
from urllib.parse import quote

_TENANT_ID: Final = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")
_FORBIDDEN_IN_KEY: Final = re.compile(r"[.#$\[\]/\x00-\x1f\x7f]")

STORAGE_POLICY_KEY: Final = "storage_policy"
# A root-level key nobody writes: reading it proves the database answers, and costs nothing.
READINESS_PATH: Final = "botmox_readiness_probe"


def is_valid_key(key: str) -> bool:
    """An RTDB key: non-empty, no ``. # $ [ ] /`` and no control characters."""
    return bool(key) and _FORBIDDEN_IN_KEY.search(key) is None


def settings_path(tenant_id: str, path: tuple[str, ...] = ()) -> str:
    """The URL path of a tenant's settings node, each segment percent-encoded."""
    if not _TENANT_ID.fullmatch(tenant_id):
        raise ValueError(f"invalid tenant id {tenant_id!r}")
    for segment in path:
        if not is_valid_key(segment):
            raise ValueError(f"invalid settings path segment {segment!r}")
    return "/".join(("tenants", tenant_id, "settings", *(quote(segment, safe="") for segment in path)))


def storage_policy_path(tenant_id: str) -> str:
    return settings_path(tenant_id, (STORAGE_POLICY_KEY,))
