"""How a write turns the stored storage policy into the next one; shared by the RTDB store.

The SQL functions implement the same rules for Supabase (``storage_policy_replace`` /
``storage_policy_merge``); the behaviour suite runs both stores through one set of tests.
"""

from __future__ import annotations

from typing import Literal

from botmox_api.model import DEFAULT_OPERATIONAL, DEFAULT_SYNC_ENABLED, StoragePolicy, StoragePolicyChanges

WriteMode = Literal["replace", "merge"]


def next_policy(
    current: StoragePolicy | None,
    changes: StoragePolicyChanges,
    *,
    mode: WriteMode,
    updated_by: str,
    updated_at: int,
) -> StoragePolicy:
    """Replace: omitted fields take the defaults. Merge: omitted fields keep the stored values (or
    the defaults when nothing is stored). Either way the version goes up by one (1 for a first write)."""
    base_operational = DEFAULT_OPERATIONAL
    base_sync = DEFAULT_SYNC_ENABLED
    if mode == "merge" and current is not None:
        base_operational = current.operational
        base_sync = current.sync_enabled
    return StoragePolicy(
        operational=changes.operational if changes.operational is not None else base_operational,
        sync_enabled=changes.sync_enabled if changes.sync_enabled is not None else base_sync,
        updated_at=updated_at,
        updated_by=updated_by,
        version=(current.version + 1) if current is not None else 1,
    )
