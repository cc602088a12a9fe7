"""The messages of ``*_QUERY_FAILED`` errors (``docs/contracts/api-v1.md``), and one helper to build them.

Every backend failure leaves a store as a ``StoreQueryFailed`` carrying one of these messages and
the store's own reason in ``details["reason"]``. Reasons never carry DSNs, keys or tokens: each
store builds its reason from an error class, an SQLSTATE or a server's error text.
"""

from __future__ import annotations

from typing import Final

from botmox_api.stores.protocols import Backend, StoreQueryFailed

READ_POLICY_SUPABASE: Final = "Failed to read storage policy from Supabase"
WRITE_POLICY_SUPABASE: Final = "Failed to write storage policy to Supabase"
READ_POLICY_RTDB: Final = "Failed to read storage policy from RTDB"
WRITE_POLICY_RTDB: Final = "Failed to write storage policy to RTDB"
READ_SETTINGS_RTDB: Final = "Failed to read settings from RTDB"
WRITE_SETTINGS_RTDB: Final = "Failed to write settings to RTDB"

# Reasons are for operators; a runaway server message must not bloat a response.
_MAX_REASON_CHARS: Final = 300


def query_failed(backend: Backend, message: str, reason: str) -> StoreQueryFailed:
    reason = " ".join(reason.split())
    if len(reason) > _MAX_REASON_CHARS:
        reason = reason[: _MAX_REASON_CHARS - 1] + "…"
    return StoreQueryFailed(backend, message, details={"reason": reason or "unknown error"})
