"""The store seam: one ``Protocol`` per kind of data, one implementation per backend.

Routes never talk to firebase-admin, psycopg or supabase-py directly; they receive a store that
satisfies one of these protocols (the values they exchange are in ``botmox_api.model``). Tests
substitute a store the way httpx tests substitute a ``MockTransport``. A future backfill
(RTDB -> Supabase) reads with one implementation and writes with another through exactly these methods.
"""

from __future__ import annotations

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
