"""The backfill seam (``StoragePolicyBackfillStore``) on both stores, on real servers: listing,
reading and the exact, conditional copy that the cutover tool builds on. What a copy writes is what
the API then serves (``Backfill.api``)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest

from botmox_api.model import IfMatch, StoragePolicy, StoragePolicyChanges, VersionConflict
from botmox_api.stores.protocols import StoragePolicyBackfillStore, StoragePolicyStore
from botmox_api.stores.rtdb_storage_policy import RtdbStoragePolicyStore
from botmox_api.stores.supabase_sql import SqlStoragePolicyStore
from harness.postgres.migrated import PgDatabase


@dataclass(frozen=True)
class Backfill:
    """A backend as the cutover tool sees it (``store``, administrator credentials) and as the API
    does (``api``: RTDB, the same store; Supabase, the API's own role on the same database)."""

    store: StoragePolicyBackfillStore
    api: StoragePolicyStore


@pytest.fixture(params=["rtdb", "sql"])
async def backfill(request: pytest.FixtureRequest) -> AsyncIterator[Backfill]:
    """Each on a database (namespace) of its own: the tenant listing sees every tenant."""
    if request.param == "rtdb":
        rtdb = RtdbStoragePolicyStore(request.getfixturevalue("rtdb_target"))
        yield Backfill(rtdb, rtdb)
        await rtdb.aclose()
        return
    database: PgDatabase = request.getfixturevalue("pg_database")
    admin = SqlStoragePolicyStore(database.admin_dsn)
    api = SqlStoragePolicyStore(database.api_dsn)
    yield Backfill(admin, api)
    await admin.aclose()
    await api.aclose()


COPY = StoragePolicy(
    operational="local", sync_enabled=True, updated_at=1_700_000_000_123, updated_by="uid-source", version=7
)


def policy(**fields: object) -> StoragePolicy:
    values: dict[str, object] = {
        "operational": "cloud",
        "sync_enabled": False,
        "updated_at": 1_600_000_000_000,
        "updated_by": "uid-1",
        "version": 1,
    }
    values.update(fields)
    return StoragePolicy(**values)  # type: ignore[arg-type]


async def batches(iterator: AsyncIterator[list[str]]) -> list[list[str]]:
    return [batch async for batch in iterator]


async def test_tenant_batches_of_an_empty_backend(backfill: Backfill) -> None:
    assert await batches(backfill.store.tenant_batches(10)) == []


# Byte order, as a client sorts strings: '-' < '0' < '_' < 'a' (a collation would order them apart).
TENANTS = ["c", "a_1", "b", "a0", "a-1"]


async def _store_all(backfill: Backfill, tenants: list[str]) -> None:
    for tenant in tenants:
        await backfill.store.write_stored(tenant, policy(updated_by=f"by-{tenant}"), expected_version=None)


async def test_tenant_batches_are_ascending_and_paged(backfill: Backfill) -> None:
    await _store_all(backfill, TENANTS)
    assert await batches(backfill.store.tenant_batches(2)) == [["a-1", "a0"], ["a_1", "b"], ["c"]]
    assert await batches(backfill.store.tenant_batches(5)) == [["a-1", "a0", "a_1", "b", "c"]]
    assert await batches(backfill.store.tenant_batches(500)) == [["a-1", "a0", "a_1", "b", "c"]]


@pytest.mark.parametrize(
    ("after", "expected"),
    [("a0", [["a_1", "b"], ["c"]]), ("a00", [["a_1", "b"], ["c"]]), ("b", [["c"]]), ("c", []), ("zz", [])],
)
async def test_tenant_batches_start_after(backfill: Backfill, after: str, expected: list[list[str]]) -> None:
    await _store_all(backfill, TENANTS)
    assert await batches(backfill.store.tenant_batches(2, after=after)) == expected


async def test_tenant_batches_need_a_positive_size(backfill: Backfill) -> None:
    with pytest.raises(ValueError, match="batch_size"):
        await batches(backfill.store.tenant_batches(0))


async def test_read_stored_leaves_out_tenants_with_nothing_stored(backfill: Backfill) -> None:
    await backfill.store.write_stored("t-one", COPY, expected_version=None)
    await backfill.api.replace("t-two", StoragePolicyChanges(), updated_by="uid-2")
    two = await backfill.api.read("t-two")

    stored = await backfill.store.read_stored(["t-one", "t-none", "t-two"])

    assert stored == {"t-one": COPY, "t-two": two}
    assert await backfill.store.read_stored([]) == {}
    assert await backfill.store.read_stored(["t-none"]) == {}


async def test_a_copy_is_what_the_api_serves(backfill: Backfill) -> None:
    await backfill.store.write_stored("t-copy", COPY, expected_version=None)

    served = await backfill.api.read("t-copy")

    assert served == COPY  # version and updated_at/updated_by of the source, not the write's
    assert served is not None
    assert served.to_document() == COPY.to_document()
    assert await backfill.store.read_stored(["t-copy"]) == {"t-copy": COPY}


async def test_the_api_writes_on_from_the_copied_version(backfill: Backfill) -> None:
    await backfill.store.write_stored("t-copy", COPY, expected_version=None)

    written = await backfill.api.merge(
        "t-copy",
        StoragePolicyChanges(sync_enabled=False),
        updated_by="uid-api",
        if_match=IfMatch(frozenset({7})),
    )

    assert (written.version, written.operational, written.sync_enabled) == (8, "local", False)
    assert (written.updated_by, written.updated_at > COPY.updated_at) == ("uid-api", True)


async def test_expected_none_on_a_stored_policy_conflicts_and_changes_nothing(backfill: Backfill) -> None:
    await backfill.store.write_stored("t-copy", COPY, expected_version=None)

    with pytest.raises(VersionConflict) as raised:
        await backfill.store.write_stored("t-copy", policy(version=1), expected_version=None)

    assert (raised.value.backend, raised.value.current_version) == (backfill.store.backend, 7)
    assert await backfill.api.read("t-copy") == COPY


@pytest.mark.parametrize("expected", [1, 6, 8])
async def test_a_stale_expected_version_conflicts_and_changes_nothing(
    backfill: Backfill, expected: int
) -> None:
    await backfill.store.write_stored("t-copy", COPY, expected_version=None)

    with pytest.raises(VersionConflict) as raised:
        await backfill.store.write_stored("t-copy", policy(version=9), expected_version=expected)

    assert raised.value.current_version == 7
    assert await backfill.api.read("t-copy") == COPY


async def test_an_expected_version_on_nothing_stored_conflicts_and_stores_nothing(backfill: Backfill) -> None:
    with pytest.raises(VersionConflict) as raised:
        await backfill.store.write_stored("t-new", COPY, expected_version=1)

    assert raised.value.current_version is None
    assert await backfill.api.read("t-new") is None
    assert await backfill.store.read_stored(["t-new"]) == {}


async def test_the_expected_version_overwrites_exactly(backfill: Backfill) -> None:
    await backfill.store.write_stored("t-copy", COPY, expected_version=None)
    older = policy(operational="cloud", sync_enabled=False, updated_at=5, updated_by="uid-old", version=3)

    # A forced copy may go back in time and in version: the target becomes the source, exactly.
    await backfill.store.write_stored("t-copy", older, expected_version=7)

    assert await backfill.api.read("t-copy") == older
    # And again, from the version now stored (a second run writes the same thing).
    await backfill.store.write_stored("t-copy", older, expected_version=3)
    assert await backfill.api.read("t-copy") == older


async def test_the_copy_is_conditional_on_what_the_api_wrote(backfill: Backfill) -> None:
    written = await backfill.api.replace(
        "t-api", StoragePolicyChanges(operational="local"), updated_by="uid-a"
    )
    assert written.version == 1

    with pytest.raises(VersionConflict):
        await backfill.store.write_stored("t-api", COPY, expected_version=None)
    await backfill.store.write_stored("t-api", COPY, expected_version=written.version)

    assert await backfill.api.read("t-api") == COPY
