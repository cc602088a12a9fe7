"""The RTDB form of a storage policy: ``{secrets, operational, sync: {enabled}, updated_at,
updated_by, version, write_id}`` at ``tenants/{t}/settings/storage_policy``.

``write_id`` names the transaction that wrote the node, so a writer whose answer was lost can tell
whether its write landed. It is the store's bookkeeping, not part of the document: the API never
serves the raw node.

Nodes written by the legacy server have no ``version``: they count as version 1, so the first
write through this API makes them version 2. Parsing is lenient on purpose: a field of the wrong
type or value (hand-edited or legacy data) reads as its default rather than making the tenant's
policy unreadable; a node that is not an object reads as nothing stored.
"""

from __future__ import annotations

from typing import Any

from botmox_api.model import DEFAULT_OPERATIONAL, DEFAULT_SYNC_ENABLED, JsonObject, Operational, StoragePolicy

LEGACY_VERSION = 1
WRITE_ID_KEY = "write_id"


def _int_or(value: Any, default: int) -> int:
    if isinstance(value, bool):
        return default
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return default


def policy_from_node(node: Any) -> StoragePolicy | None:
    if not isinstance(node, dict):
        return None
    operational: Operational = DEFAULT_OPERATIONAL
    if node.get("operational") in ("local", "cloud"):
        operational = node["operational"]
    sync = node.get("sync")
    enabled = sync.get("enabled") if isinstance(sync, dict) else None
    updated_by = node.get("updated_by")
    version = _int_or(node.get("version"), LEGACY_VERSION)
    return StoragePolicy(
        operational=operational,
        sync_enabled=enabled if isinstance(enabled, bool) else DEFAULT_SYNC_ENABLED,
        updated_at=_int_or(node.get("updated_at"), 0),
        updated_by=updated_by if isinstance(updated_by, str) else "",
        version=version if version >= 1 else LEGACY_VERSION,
    )


def node_from_policy(policy: StoragePolicy, write_id: str) -> JsonObject:
    return {**policy.to_document(), "version": policy.version, WRITE_ID_KEY: write_id}


def written_by(node: Any, write_id: str) -> bool:
    """Whether ``node`` is the one the transaction ``write_id`` wrote (and nobody wrote since)."""
    return isinstance(node, dict) and node.get(WRITE_ID_KEY) == write_id
