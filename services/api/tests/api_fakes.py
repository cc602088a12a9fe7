"""An in-memory store set (the application's ``StoreSet`` of memory stores): the test seam for
tests about the HTTP layer (auth, CORS, rate limit, errors) that do not need a real backend.
Contract tests use the real stores (``conftest.py``)."""

from __future__ import annotations

import copy
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from botmox_api.model import (
    DEFAULT_OPERATIONAL,
    DEFAULT_SYNC_ENABLED,
    DataBackend,
    IfMatch,
    JsonObject,
    JsonValue,
    Readiness,
    StoragePolicy,
    StoragePolicyChanges,
    StoreError,
    VersionConflict,
)
from botmox_api.stores.protocols import StoreSet

UP = Readiness(True)
Probe = Callable[[], Awaitable[Readiness]]


def _prune(value: JsonValue) -> JsonValue:
    """The RTDB way: null members removed, empty objects and arrays vanish."""
    if isinstance(value, dict):
        pruned = {k: _prune(v) for k, v in value.items()}
        return {k: v for k, v in pruned.items() if v is not None} or None
    if isinstance(value, list):
        items = [_prune(v) for v in value]
        return items if any(v is not None for v in items) else None
    return value


@dataclass
class MemorySettingsStore:
    backend: DataBackend = "rtdb"
    trees: dict[str, JsonObject] = field(default_factory=dict)
    failure: StoreError | None = None
    readiness: Readiness = UP
    probe: Probe | None = None

    async def read_tree(self, tenant_id: str) -> JsonObject:
        if self.failure:
            raise self.failure
        return copy.deepcopy(self.trees.get(tenant_id, {}))

    async def read(self, tenant_id: str, path: tuple[str, ...]) -> JsonValue:
        node: JsonValue = await self.read_tree(tenant_id)
        for segment in path:
            node = node.get(segment) if isinstance(node, dict) else None
        return node

    async def write(
        self, tenant_id: str, path: tuple[str, ...], body: JsonValue, *, updated_at: int
    ) -> JsonValue:
        if self.failure:
            raise self.failure
        current = await self.read(tenant_id, path)
        if isinstance(body, dict):
            merged = dict(current) if isinstance(current, dict) else {}
            merged.update(body)
            merged["updated_at"] = updated_at
            new: JsonValue = _prune(merged)
        else:
            new = _prune(body)
        tree: JsonObject = self.trees.setdefault(tenant_id, {})
        parent: JsonObject = tree
        for segment in path[:-1]:
            child = parent.get(segment)
            if not isinstance(child, dict):
                child = parent[segment] = {}
            parent = child
        if new is None:
            parent.pop(path[-1], None)
        else:
            parent[path[-1]] = new
        pruned = _prune(tree)
        self.trees[tenant_id] = pruned if isinstance(pruned, dict) else {}
        return await self.read(tenant_id, path)

    async def check_ready(self) -> Readiness:
        return await self.probe() if self.probe is not None else self.readiness

    async def aclose(self) -> None:
        return None


@dataclass
class MemoryStoragePolicyStore:
    backend: DataBackend = "rtdb"
    policies: dict[str, StoragePolicy] = field(default_factory=dict)
    failure: StoreError | None = None
    readiness: Readiness = UP
    probe: Probe | None = None

    async def read(self, tenant_id: str, *, uid: str | None = None) -> StoragePolicy | None:
        if self.failure:
            raise self.failure
        return self.policies.get(tenant_id)

    async def _write(
        self,
        tenant_id: str,
        changes: StoragePolicyChanges,
        base: StoragePolicy | None,
        updated_by: str,
        if_match: IfMatch | None,
    ) -> StoragePolicy:
        if self.failure:
            raise self.failure
        current = self.policies.get(tenant_id)
        if if_match is not None and not if_match.matches(current.version if current else None):
            raise VersionConflict(self.backend, current.version if current else None)
        operational = changes.operational or (base.operational if base else DEFAULT_OPERATIONAL)
        sync_enabled = changes.sync_enabled
        if sync_enabled is None:
            sync_enabled = base.sync_enabled if base else DEFAULT_SYNC_ENABLED
        policy = StoragePolicy(
            operational, sync_enabled, 1_700_000_000_000, updated_by, (current.version + 1) if current else 1
        )
        self.policies[tenant_id] = policy
        return policy

    async def replace(
        self,
        tenant_id: str,
        changes: StoragePolicyChanges,
        *,
        updated_by: str,
        if_match: IfMatch | None = None,
    ) -> StoragePolicy:
        return await self._write(tenant_id, changes, None, updated_by, if_match)

    async def merge(
        self,
        tenant_id: str,
        changes: StoragePolicyChanges,
        *,
        updated_by: str,
        if_match: IfMatch | None = None,
    ) -> StoragePolicy:
        return await self._write(tenant_id, changes, self.policies.get(tenant_id), updated_by, if_match)

    async def check_ready(self) -> Readiness:
        return await self.probe() if self.probe is not None else self.readiness

    async def aclose(self) -> None:
        return None


def memory_store_set(
    *,
    supabase_configured: bool = True,
    rtdb_configured: bool = True,
    supabase_readiness: Readiness = UP,
    rtdb_readiness: Readiness = UP,
    shadow: bool = False,
) -> StoreSet:
    """The application's ``StoreSet`` on memory stores. ``storage_policy`` is an RTDB-like store;
    ``supabase`` is a store of its own, there for its readiness and, with ``shadow``, as the store
    shadow reads compare with (as the factory builds it in ``rtdb`` mode)."""
    supabase = MemoryStoragePolicyStore(backend="supabase", readiness=supabase_readiness)
    return StoreSet(
        settings=MemorySettingsStore(readiness=rtdb_readiness),
        storage_policy=MemoryStoragePolicyStore(),
        supabase=supabase,
        supabase_configured=supabase_configured,
        rtdb_configured=rtdb_configured,
        shadow=supabase if shadow else None,
    )
