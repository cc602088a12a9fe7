"""The store seam: one ``Protocol`` per kind of data, one implementation per backend.

Routes never talk to firebase-admin, psycopg or supabase-py directly; they receive a store that
satisfies one of these protocols (the values they exchange are in ``botmox_api.model``). Tests
substitute a store the way httpx tests substitute a ``MockTransport``. A future backfill
(RTDB -> Supabase) reads with one implementation and writes with another through exactly these methods.

``StoreSet`` is what the application holds: the stores the active mode routes each path to
(``factory.stores_for`` builds it from the configuration; tests build one of memory stores).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from botmox_api.model import (
    DataBackend,
    IfMatch,
    JsonObject,
    JsonValue,
    Readiness,
    StoragePolicy,
    StoragePolicyChanges,
)


class StoragePolicyStore(Protocol):
    """Where a tenant's ``storage_policy`` document lives.

    Every call acts for one principal: ``tenant_id`` and the principal's uid (``uid`` of a read,
    ``updated_by`` of a write). The Supabase stores present both to the database as verified JWT
    claims (``app_metadata.tenant_id`` and ``sub``): row-level security confines the call to that
    tenant and the database records ``sub`` as the author, whatever the store passes as arguments.
    RTDB stores the uid as ``updated_by`` itself. A read with ``uid=None`` is the API's own (a probe).
    """

    backend: DataBackend

    async def read(self, tenant_id: str, *, uid: str | None = None) -> StoragePolicy | None: ...

    async def replace(
        self,
        tenant_id: str,
        changes: StoragePolicyChanges,
        *,
        updated_by: str,
        if_match: IfMatch | None = None,
    ) -> StoragePolicy: ...

    async def merge(
        self,
        tenant_id: str,
        changes: StoragePolicyChanges,
        *,
        updated_by: str,
        if_match: IfMatch | None = None,
    ) -> StoragePolicy: ...

    async def check_ready(self) -> Readiness: ...

    async def aclose(self) -> None: ...


class SettingsStore(Protocol):
    """Generic tenant settings: a JSON tree stored the RTDB way (nulls removed, empties vanish)."""

    backend: DataBackend

    async def read_tree(self, tenant_id: str) -> JsonObject: ...

    async def read(self, tenant_id: str, path: tuple[str, ...]) -> JsonValue: ...

    async def write(
        self, tenant_id: str, path: tuple[str, ...], body: JsonValue, *, updated_at: int
    ) -> JsonValue:
        """Merge an object body one level deep into the node (a ``null`` child deletes it) and
        set ``updated_at``; replace the node with any other body. Returns the node afterwards.
        Concurrent writes of different children of one node lose no update."""
        ...

    async def check_ready(self) -> Readiness: ...

    async def aclose(self) -> None: ...


@dataclass(frozen=True, slots=True)
class StoreSet:
    settings: SettingsStore
    """Generic settings paths; always RTDB."""
    storage_policy: StoragePolicyStore
    """The ``storage_policy`` path, in the store the active mode routes it to."""
    supabase: StoragePolicyStore
    """The Supabase storage-policy store (unconfigured stand-in when not configured)."""
    supabase_configured: bool
    rtdb_configured: bool

    async def check_supabase(self) -> Readiness:
        return await self.supabase.check_ready()

    async def check_rtdb(self) -> Readiness:
        return await self.settings.check_ready()

    async def aclose(self) -> None:
        stores: list[SettingsStore | StoragePolicyStore] = [self.settings, self.storage_policy]
        if self.supabase is not self.storage_policy:
            stores.append(self.supabase)
        for store in stores:
            await store.aclose()
