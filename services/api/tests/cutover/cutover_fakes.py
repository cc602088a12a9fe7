"""An in-memory ``StoragePolicyBackfillStore`` (and ``LegacyStoragePolicySource``) for the cutover
tool's tests: the protocol's semantics (conditional writes, sorted batches), plus hooks that inject
what the real stores do rarely (a tenant changing between read and write, a backend failing)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Sequence

from botmox_api.cutover.survey import Backends
from botmox_api.model import DataBackend, InvalidStoredPolicy, StoragePolicy, VersionConflict, query_failed

Document = StoragePolicy | InvalidStoredPolicy


def policy(
    version: int = 1, *, operational: str = "local", updated_at: int = 1_000, by: str = "u1"
) -> StoragePolicy:
    assert operational in ("local", "cloud")
    return StoragePolicy(
        operational="local" if operational == "local" else "cloud",
        sync_enabled=False,
        updated_at=updated_at,
        updated_by=by,
        version=version,
    )


class FakeStore:
    def __init__(self, backend: DataBackend, docs: dict[str, Document] | None = None) -> None:
        self.backend: DataBackend = backend
        self.docs: dict[str, Document] = dict(docs or {})
        self.listed_only: set[str] = set()
        """Keys listed by ``tenant_batches`` with nothing stored (RTDB: a tenant with settings only)."""
        self.legacy_node: Document | None = None
        self.writes: list[str] = []
        self.reads: int = 0
        self.closed = False
        self.before_write: Callable[[str], None] | None = None
        self.fail_reads = False

    def put(self, tenant: str, document: Document) -> None:
        self.docs[tenant] = document

    async def tenant_batches(self, batch_size: int, *, after: str | None = None) -> AsyncIterator[list[str]]:
        ids = sorted({*self.docs, *self.listed_only})
        ids = [tenant for tenant in ids if after is None or tenant > after]
        for start in range(0, len(ids), batch_size):
            yield ids[start : start + batch_size]

    async def read_stored(self, tenant_ids: Sequence[str]) -> dict[str, Document]:
        self.reads += 1
        if self.fail_reads:
            raise query_failed(self.backend, "read", "storage policy", "connection refused")
        return {tenant: self.docs[tenant] for tenant in tenant_ids if tenant in self.docs}

    async def write_stored(
        self, tenant_id: str, policy: StoragePolicy, *, expected_version: int | None
    ) -> None:
        if self.before_write is not None:
            self.before_write(tenant_id)
        await asyncio.sleep(0)  # the loop runs meanwhile (a signal handler, another write), as over a network
        current = self.docs.get(tenant_id)
        current_version = None if current is None else current.version
        if current_version != expected_version or (current is not None and current_version is None):
            raise VersionConflict(self.backend, current_version)
        self.docs[tenant_id] = policy
        self.writes.append(tenant_id)

    async def read_legacy(self) -> Document | None:
        return self.legacy_node

    async def remove_legacy(self, *, expected_version: int) -> None:
        node = self.legacy_node
        if node is None or node.version != expected_version:
            raise VersionConflict(self.backend, None if node is None else node.version)
        self.legacy_node = None

    async def aclose(self) -> None:
        self.closed = True


def backends(rtdb: FakeStore, supabase: FakeStore) -> Backends:
    return Backends(rtdb=rtdb, supabase=supabase, legacy=rtdb)
