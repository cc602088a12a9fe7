"""RTDB-specific storage-policy behaviour: the stored node's shape and legacy nodes."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from botmox_api.model import IfMatch, JsonValue, StoragePolicyChanges, VersionConflict
from botmox_api.stores._rtdb import STORAGE_POLICY_KEY, RtdbTarget, settings_path, storage_policy_path
from botmox_api.stores._supabase_rows import UnknownVersion, current_version_from_detail
from botmox_api.stores.rtdb_settings import RtdbSettingsStore
from botmox_api.stores.rtdb_storage_policy import RtdbStoragePolicyStore


@pytest.fixture
async def rtdb_policy(rtdb_target: RtdbTarget) -> AsyncIterator[RtdbStoragePolicyStore]:
    store = RtdbStoragePolicyStore(rtdb_target, clock=lambda: 1_700_000_000_000)
    yield store
    await store.aclose()


async def test_node_shape(
    rtdb_policy: RtdbStoragePolicyStore, settings_store: RtdbSettingsStore, tenant: str
) -> None:
    await rtdb_policy.replace(tenant, StoragePolicyChanges(sync_enabled=True), updated_by="uid-1")
    node = await settings_store.read(tenant, ("storage_policy",))
    assert isinstance(node, dict)
    assert node == {
        "secrets": "local-only",
        "operational": "cloud",
        "sync": {"enabled": True},
        "updated_at": 1_700_000_000_000,
        "updated_by": "uid-1",
        "version": 1,
        "write_id": node["write_id"],
    }
    # Each write names itself anew, so a writer whose answer was lost can find its own write.
    await rtdb_policy.merge(tenant, StoragePolicyChanges(), updated_by="uid-1")
    again = await settings_store.read(tenant, ("storage_policy",))
    assert isinstance(again, dict)
    assert isinstance(node["write_id"], str)
    assert isinstance(again["write_id"], str)
    assert again["write_id"] != node["write_id"]


async def _store_raw(settings: RtdbSettingsStore, tenant: str, node: JsonValue) -> None:
    # Written through the parent so the node holds exactly this value, as a legacy writer left it.
    await settings.write(tenant, (), {"storage_policy": node}, updated_at=0)


def test_storage_policy_path_is_the_settings_path_of_its_key() -> None:
    # storage_policy_path writes the key in unencoded; settings_path is the rule.
    assert storage_policy_path("t-1") == settings_path("t-1", (STORAGE_POLICY_KEY,))
    with pytest.raises(ValueError, match="invalid tenant id"):
        storage_policy_path("../t")


async def test_legacy_node_without_version_counts_as_version_1(
    rtdb_policy: RtdbStoragePolicyStore, settings_store: RtdbSettingsStore, tenant: str
) -> None:
    legacy: JsonValue = {
        "secrets": "local-only",
        "operational": "local",
        "sync": {"enabled": True},
        "updated_at": 5,
    }
    await _store_raw(settings_store, tenant, legacy)
    current = await rtdb_policy.read(tenant)
    assert current is not None
    assert (current.version, current.operational, current.sync_enabled, current.updated_by) == (
        1,
        "local",
        True,
        "",
    )
    merged = await rtdb_policy.merge(
        tenant, StoragePolicyChanges(), updated_by="u", if_match=IfMatch(versions=frozenset({1}))
    )
    assert (merged.version, merged.operational, merged.sync_enabled) == (2, "local", True)


async def test_malformed_fields_read_as_defaults(
    rtdb_policy: RtdbStoragePolicyStore, settings_store: RtdbSettingsStore, tenant: str
) -> None:
    await _store_raw(
        settings_store, tenant, {"operational": "x", "sync": True, "updated_at": "soon", "version": 0}
    )
    current = await rtdb_policy.read(tenant)
    assert current is not None
    assert (current.operational, current.sync_enabled, current.updated_at, current.version) == (
        "cloud",
        False,
        0,
        1,
    )


async def test_non_object_node_reads_as_nothing_stored(
    rtdb_policy: RtdbStoragePolicyStore, settings_store: RtdbSettingsStore, tenant: str
) -> None:
    await _store_raw(settings_store, tenant, "garbage")
    assert await rtdb_policy.read(tenant) is None
    with pytest.raises(VersionConflict):
        await rtdb_policy.merge(
            tenant, StoragePolicyChanges(), updated_by="u", if_match=IfMatch(any_version=True)
        )
    written = await rtdb_policy.replace(tenant, StoragePolicyChanges(), updated_by="u")
    assert written.version == 1


@pytest.mark.parametrize(
    ("detail", "version"),
    [("current_version=4", 4), ("current_version=none", None), (" current_version=12 ", 12)],
)
def test_bm412_detail_names_the_version(detail: str, version: int | None) -> None:
    assert current_version_from_detail(detail) == version


@pytest.mark.parametrize("detail", [None, "", "current version 4", "current_version=-1", 4])
def test_bm412_detail_without_a_version(detail: object) -> None:
    with pytest.raises(UnknownVersion):
        current_version_from_detail(detail)
