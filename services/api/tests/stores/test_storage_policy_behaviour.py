"""One behaviour suite for every storage-policy store on a real server (RTDB emulator, PostgreSQL)."""

from __future__ import annotations

import uuid

import pytest

from botmox_api.model import IfMatch, StoragePolicy, StoragePolicyChanges, VersionConflict
from botmox_api.stores.protocols import StoragePolicyStore

NO_CHANGES = StoragePolicyChanges()


async def test_read_of_nothing_stored_is_none(policy_store: StoragePolicyStore, tenant: str) -> None:
    assert await policy_store.read(tenant) is None


async def test_replace_with_no_fields_stores_the_defaults(
    policy_store: StoragePolicyStore, tenant: str
) -> None:
    written = await policy_store.replace(tenant, NO_CHANGES, updated_by="uid-1")
    assert (written.operational, written.sync_enabled, written.version) == ("cloud", False, 1)
    assert written.updated_by == "uid-1"
    assert written.updated_at > 0
    assert written.secrets == "local-only"
    assert await policy_store.read(tenant) == written


async def test_replace_resets_omitted_fields_to_defaults(
    policy_store: StoragePolicyStore, tenant: str
) -> None:
    await policy_store.replace(
        tenant, StoragePolicyChanges(operational="local", sync_enabled=True), updated_by="u"
    )
    written = await policy_store.replace(tenant, StoragePolicyChanges(sync_enabled=True), updated_by="u")
    assert (written.operational, written.sync_enabled, written.version) == ("cloud", True, 2)


async def test_merge_on_nothing_stored_starts_from_defaults(
    policy_store: StoragePolicyStore, tenant: str
) -> None:
    written = await policy_store.merge(tenant, StoragePolicyChanges(sync_enabled=True), updated_by="u")
    assert (written.operational, written.sync_enabled, written.version) == ("cloud", True, 1)


async def test_merge_keeps_stored_fields(policy_store: StoragePolicyStore, tenant: str) -> None:
    await policy_store.replace(tenant, StoragePolicyChanges(operational="local"), updated_by="first")
    written = await policy_store.merge(tenant, StoragePolicyChanges(sync_enabled=True), updated_by="second")
    assert (written.operational, written.sync_enabled) == ("local", True)
    assert written.updated_by == "second"
    assert await policy_store.read(tenant) == written


async def test_every_write_bumps_the_version(policy_store: StoragePolicyStore, tenant: str) -> None:
    versions = []
    for index in range(4):
        write = policy_store.merge if index % 2 else policy_store.replace
        versions.append((await write(tenant, NO_CHANGES, updated_by="u")).version)
    assert versions == [1, 2, 3, 4]
    stored = await policy_store.read(tenant)
    assert stored is not None
    assert stored.version == 4


async def test_document_has_the_wire_shape(policy_store: StoragePolicyStore, tenant: str) -> None:
    written = await policy_store.replace(
        tenant, StoragePolicyChanges(operational="local", sync_enabled=True), updated_by="u"
    )
    assert written.to_document() == {
        "secrets": "local-only",
        "operational": "local",
        "sync": {"enabled": True},
        "updated_at": written.updated_at,
        "updated_by": "u",
    }


async def test_tenants_do_not_share_a_policy(policy_store: StoragePolicyStore, tenant: str) -> None:
    await policy_store.replace(tenant, StoragePolicyChanges(operational="local"), updated_by="u")
    other = f"t-{uuid.uuid4().hex[:12]}"
    assert await policy_store.read(other) is None
    written = await policy_store.merge(other, NO_CHANGES, updated_by="v")
    assert (written.operational, written.version) == ("cloud", 1)
    mine = await policy_store.read(tenant)
    assert mine is not None
    assert (mine.operational, mine.version) == ("local", 1)


async def _stored_version_2(store: StoragePolicyStore, tenant: str) -> StoragePolicy:
    await store.replace(tenant, NO_CHANGES, updated_by="u")
    return await store.merge(tenant, StoragePolicyChanges(operational="local"), updated_by="u")


@pytest.mark.parametrize("mode", ["replace", "merge"])
@pytest.mark.parametrize(
    "if_match",
    [IfMatch(versions=frozenset({2})), IfMatch(any_version=True), IfMatch(versions=frozenset({7, 2, 1}))],
    ids=["exact", "star", "list"],
)
async def test_if_match_that_matches_writes(
    policy_store: StoragePolicyStore, tenant: str, mode: str, if_match: IfMatch
) -> None:
    await _stored_version_2(policy_store, tenant)
    write = policy_store.replace if mode == "replace" else policy_store.merge
    written = await write(tenant, StoragePolicyChanges(sync_enabled=True), updated_by="w", if_match=if_match)
    assert written.version == 3
    assert written.sync_enabled is True


@pytest.mark.parametrize("mode", ["replace", "merge"])
@pytest.mark.parametrize(
    "if_match",
    [IfMatch(versions=frozenset({1})), IfMatch(versions=frozenset({3, 4})), IfMatch()],
    ids=["stale", "future-list", "empty-list"],
)
async def test_if_match_that_does_not_match_conflicts_and_changes_nothing(
    policy_store: StoragePolicyStore, tenant: str, mode: str, if_match: IfMatch
) -> None:
    before = await _stored_version_2(policy_store, tenant)
    write = policy_store.replace if mode == "replace" else policy_store.merge
    with pytest.raises(VersionConflict) as raised:
        await write(tenant, StoragePolicyChanges(sync_enabled=True), updated_by="w", if_match=if_match)
    assert raised.value.current_version == 2
    assert raised.value.backend == policy_store.backend
    assert await policy_store.read(tenant) == before


@pytest.mark.parametrize("mode", ["replace", "merge"])
@pytest.mark.parametrize(
    "if_match", [IfMatch(any_version=True), IfMatch(versions=frozenset({1}))], ids=["star", "version"]
)
async def test_if_match_on_nothing_stored_conflicts_and_stores_nothing(
    policy_store: StoragePolicyStore, tenant: str, mode: str, if_match: IfMatch
) -> None:
    write = policy_store.replace if mode == "replace" else policy_store.merge
    with pytest.raises(VersionConflict) as raised:
        await write(tenant, NO_CHANGES, updated_by="w", if_match=if_match)
    assert raised.value.current_version is None
    assert await policy_store.read(tenant) is None


async def test_check_ready_on_a_working_store(policy_store: StoragePolicyStore) -> None:
    readiness = await policy_store.check_ready()
    assert (readiness.ready, readiness.reason) == (True, None)
