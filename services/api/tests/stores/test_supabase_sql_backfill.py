"""The SQL store's backfill calls where they differ from RTDB's: only an administrator's DSN may make
them (the API's role is refused by the database), and the rows they read are the table's."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from botmox_api.model import InvalidStoredPolicy, StoragePolicy, StoreQueryFailed
from botmox_api.stores._supabase_rows import stored_policy_from_row
from botmox_api.stores.supabase_sql import SqlStoragePolicyStore
from harness.postgres.migrated import PgDatabase

COPY = StoragePolicy(operational="local", sync_enabled=True, updated_at=5, updated_by="uid-1", version=2)


@pytest.fixture
async def admin(pg_database: PgDatabase) -> AsyncIterator[SqlStoragePolicyStore]:
    store = SqlStoragePolicyStore(pg_database.admin_dsn)
    yield store
    await store.aclose()


@pytest.fixture
async def api(pg_database: PgDatabase) -> AsyncIterator[SqlStoragePolicyStore]:
    store = SqlStoragePolicyStore(pg_database.api_dsn)
    yield store
    await store.aclose()


def _refused(raised: pytest.ExceptionInfo[StoreQueryFailed], function: str) -> None:
    assert raised.value.backend == "supabase"
    assert raised.value.details == {"reason": f"SQLSTATE 42501: permission denied for function {function}"}


async def test_the_api_role_cannot_list_read_or_copy(
    admin: SqlStoragePolicyStore, api: SqlStoragePolicyStore
) -> None:
    await admin.write_stored("t-a", COPY, expected_version=None)

    with pytest.raises(StoreQueryFailed) as listed:
        [batch async for batch in api.tenant_batches(10)]
    _refused(listed, "backfill_storage_policy_tenants")
    with pytest.raises(StoreQueryFailed) as read:
        await api.read_stored(["t-a"])
    _refused(read, "backfill_storage_policy_read")
    with pytest.raises(StoreQueryFailed) as written:
        await api.write_stored("t-a", COPY, expected_version=2)
    _refused(written, "backfill_storage_policy_write")

    assert await admin.read_stored(["t-a"]) == {"t-a": COPY}


@pytest.mark.parametrize(
    ("tenant", "policy", "sqlstate"),
    [
        ("t-a", StoragePolicy("local", True, 5, "", 1), "22023"),
        ("t-a", StoragePolicy("local", True, -1, "u", 1), "22023"),
        ("t-a", StoragePolicy("local", True, 5, "u", 0), "23514"),
        ("Not A Tenant", COPY, "23514"),
    ],
    ids=["empty-author", "negative-time", "version-0", "invalid-tenant"],
)
async def test_the_database_refuses_what_no_row_may_hold(
    admin: SqlStoragePolicyStore, tenant: str, policy: StoragePolicy, sqlstate: str
) -> None:
    with pytest.raises(StoreQueryFailed) as raised:
        await admin.write_stored(tenant, policy, expected_version=None)
    assert str(raised.value.details["reason"]).startswith(f"SQLSTATE {sqlstate}:")
    assert await admin.read_stored([tenant]) == {}


async def test_read_stored_of_an_id_no_row_can_have_is_empty(admin: SqlStoragePolicyStore) -> None:
    assert await admin.read_stored(["Not A Tenant", "../x"]) == {}


def test_a_row_the_constraints_cannot_hold_is_invalid_not_an_error() -> None:
    row = {
        "operational": "sideways",
        "sync_enabled": True,
        "updated_at_ms": 5,
        "updated_by": "u",
        "version": 3,
    }
    assert stored_policy_from_row(row) == InvalidStoredPolicy(
        "unexpected value in column operational", version=3
    )
    assert stored_policy_from_row({**row, "operational": "local"}) == StoragePolicy("local", True, 5, "u", 3)
