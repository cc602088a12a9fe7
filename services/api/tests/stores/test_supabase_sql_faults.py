"""PostgreSQL stopped under a live SQL store, then started again: StoreQueryFailed while it is down,
the same store object works again once it is back, and no failed write left anything behind."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from botmox_api.model import StoragePolicy, StoragePolicyChanges, StoreQueryFailed
from botmox_api.stores.supabase_sql import SqlStoragePolicyStore

RECOVERY_ATTEMPTS = 60
RECOVERY_PAUSE_S = 0.25


async def _read_when_back(store: SqlStoragePolicyStore, tenant: str) -> StoragePolicy | None:
    """Bounded: a call connects anew once the server closed the pool's connections."""
    for _ in range(RECOVERY_ATTEMPTS):
        try:
            return await store.read(tenant)
        except StoreQueryFailed:
            await asyncio.sleep(RECOVERY_PAUSE_S)
    raise AssertionError("the store did not recover after PostgreSQL came back")


async def test_postgres_stopped_then_started(postgres_private: Any, tenant: str) -> None:
    store = SqlStoragePolicyStore(postgres_private.database.api_dsn, pool_timeout_s=1.0)
    try:
        stored = await store.replace(tenant, StoragePolicyChanges(operational="local"), updated_by="u")

        postgres_private.stop()
        with pytest.raises(StoreQueryFailed) as read_failure:
            await store.read(tenant)
        assert read_failure.value.message == "Failed to read storage policy from Supabase"
        with pytest.raises(StoreQueryFailed) as write_failure:
            await store.merge(tenant, StoragePolicyChanges(sync_enabled=True), updated_by="lost")
        assert write_failure.value.backend == "supabase"
        assert write_failure.value.message == "Failed to write storage policy to Supabase"
        assert isinstance(write_failure.value.details["reason"], str)
        readiness = await store.check_ready()
        assert readiness.ready is False

        postgres_private.start()
        assert await _read_when_back(store, tenant) == stored
        assert (await store.check_ready()).ready is True
        again = await store.merge(tenant, StoragePolicyChanges(sync_enabled=True), updated_by="u2")
        assert (again.version, again.operational, again.sync_enabled) == (2, "local", True)
    finally:
        await store.aclose()
