"""Tenant-scoped RTDB paths: ``tenants/{tenant_id}/settings/{path}``.

The API validates tenant ids and settings paths before a store sees them; this module re-checks
the few characters that would let a value escape its tenant node (``/``, ``.`` segments, RTDB's
forbidden characters), because a wrong path here would write into another tenant.

Paths travel in the URL of RTDB's REST protocol, which percent-decodes them, so every segment is
percent-encoded here: the key ``a%20b`` must be stored as ``a%20b``, not ``a b``, and a ``?`` must
stay part of the key instead of starting a query string.
"""

from __future__ import annotations

from typing import Final
from urllib.parse import quote

from botmox_api.model import TENANT_ID_PATTERN, is_rtdb_key

STORAGE_POLICY_KEY: Final = "storage_policy"
# A root-level key nobody writes: reading it proves the database answers, and costs nothing.
READINESS_PATH: Final = "botmox_readiness_probe"


def settings_path(tenant_id: str, path: tuple[str, ...] = ()) -> str:
    """The URL path of a tenant's settings node, each segment percent-encoded."""
    if not TENANT_ID_PATTERN.fullmatch(tenant_id):
        raise ValueError(f"invalid tenant id {tenant_id!r}")
    for segment in path:
        if not is_rtdb_key(segment):
            raise ValueError(f"invalid settings path segment {segment!r}")
    return "/".join(("tenants", tenant_id, "settings", *(quote(segment, safe="") for segment in path)))


def storage_policy_path(tenant_id: str) -> str:
    return settings_path(tenant_id, (STORAGE_POLICY_KEY,))
