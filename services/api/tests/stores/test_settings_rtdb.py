"""Generic settings in RTDB: values stored the RTDB way, one-level merge, non-object replace."""

from __future__ import annotations

import pytest

from botmox_api.model import JsonObject, JsonValue, StoreQueryFailed
from botmox_api.stores.rtdb_settings import RtdbSettingsStore


async def test_nothing_stored(settings_store: RtdbSettingsStore, tenant: str) -> None:
    assert await settings_store.read_tree(tenant) == {}
    assert await settings_store.read(tenant, ("alerts",)) is None


async def test_object_write_returns_the_node_with_updated_at(
    settings_store: RtdbSettingsStore, tenant: str
) -> None:
    node = await settings_store.write(tenant, ("alerts",), {"warning_days": 7, "on": True}, updated_at=111)
    assert node == {"warning_days": 7, "on": True, "updated_at": 111}
    assert await settings_store.read(tenant, ("alerts",)) == node


async def test_object_write_merges_one_level_deep(settings_store: RtdbSettingsStore, tenant: str) -> None:
    await settings_store.write(tenant, ("proxy",), {"a": {"x": 1, "y": 2}, "b": 1}, updated_at=1)
    node = await settings_store.write(tenant, ("proxy",), {"a": {"z": 3}, "c": "new"}, updated_at=2)
    # Children of the body replace the stored children whole; other children stay.
    assert node == {"a": {"z": 3}, "b": 1, "c": "new", "updated_at": 2}


async def test_null_child_deletes_it_and_nested_nulls_are_dropped(
    settings_store: RtdbSettingsStore, tenant: str
) -> None:
    await settings_store.write(tenant, ("n",), {"keep": 1, "gone": 2}, updated_at=1)
    node = await settings_store.write(
        tenant, ("n",), {"gone": None, "deep": {"x": None, "y": 1}}, updated_at=2
    )
    assert node == {"keep": 1, "deep": {"y": 1}, "updated_at": 2}


async def test_empty_objects_and_arrays_vanish(settings_store: RtdbSettingsStore, tenant: str) -> None:
    node = await settings_store.write(tenant, ("e",), {"obj": {}, "arr": [], "x": 1}, updated_at=5)
    assert node == {"x": 1, "updated_at": 5}


async def test_arrays_round_trip(settings_store: RtdbSettingsStore, tenant: str) -> None:
    node = await settings_store.write(
        tenant, ("lists",), {"ids": [3, 1, 2], "rows": [{"a": 1}, {"b": [True, "s"]}]}, updated_at=5
    )
    assert node == {"ids": [3, 1, 2], "rows": [{"a": 1}, {"b": [True, "s"]}], "updated_at": 5}


@pytest.mark.parametrize("body", [42, 7.5, "text", True, [1, 2, 3]])
async def test_non_object_body_replaces_the_node(
    settings_store: RtdbSettingsStore, tenant: str, body: JsonValue
) -> None:
    await settings_store.write(tenant, ("alerts",), {"warning_days": 7}, updated_at=1)
    node = await settings_store.write(tenant, ("alerts",), body, updated_at=2)
    assert node == body
    assert await settings_store.read(tenant, ("alerts",)) == body


async def test_null_body_deletes_the_node(settings_store: RtdbSettingsStore, tenant: str) -> None:
    await settings_store.write(tenant, ("alerts",), {"warning_days": 7}, updated_at=1)
    assert await settings_store.write(tenant, ("alerts",), None, updated_at=2) is None
    assert await settings_store.read_tree(tenant) == {}


async def test_deep_paths_and_read_tree(settings_store: RtdbSettingsStore, tenant: str) -> None:
    await settings_store.write(tenant, ("generators", "names", "prefix"), "bot", updated_at=1)
    await settings_store.write(tenant, ("alerts", "warning_days"), 9, updated_at=2)
    assert await settings_store.read_tree(tenant) == {
        "generators": {"names": {"prefix": "bot"}},
        "alerts": {"warning_days": 9},
    }


async def test_read_tree_keeps_the_raw_storage_policy_node(
    settings_store: RtdbSettingsStore, tenant: str
) -> None:
    # Documented: the API replaces this raw child with the policy store's document.
    raw: JsonObject = {
        "secrets": "local-only",
        "operational": "cloud",
        "sync": {"enabled": False},
        "version": 3,
    }
    await settings_store.write(tenant, ("storage_policy",), raw, updated_at=4)
    assert (await settings_store.read_tree(tenant))["storage_policy"] == {**raw, "updated_at": 4}


async def test_tenants_are_apart(settings_store: RtdbSettingsStore, tenant: str) -> None:
    await settings_store.write(tenant, ("alerts",), {"x": 1}, updated_at=1)
    assert await settings_store.read_tree(tenant + "-other") == {}


@pytest.mark.parametrize("key", ["a/b", "a.b", "", "x$"])
async def test_invalid_top_level_key_is_refused_before_writing(
    settings_store: RtdbSettingsStore, tenant: str, key: str
) -> None:
    with pytest.raises(StoreQueryFailed) as raised:
        await settings_store.write(tenant, ("k",), {"ok": 1, key: 2}, updated_at=1)
    assert raised.value.message == "Failed to write settings to RTDB"
    assert await settings_store.read_tree(tenant) == {}


async def test_invalid_nested_key_is_refused_by_rtdb_and_nothing_is_written(
    settings_store: RtdbSettingsStore, tenant: str
) -> None:
    await settings_store.write(tenant, ("k",), {"before": 1}, updated_at=1)
    with pytest.raises(StoreQueryFailed) as raised:
        await settings_store.write(tenant, ("k",), {"ok": 1, "nested": {"bad.key": 2}}, updated_at=2)
    assert raised.value.backend == "rtdb"
    assert str(raised.value.details["reason"]).startswith("RTDB answered HTTP 400")
    assert await settings_store.read(tenant, ("k",)) == {"before": 1, "updated_at": 1}


@pytest.mark.parametrize("path", [("..",), ("a/b",), ("x#",)])
async def test_store_refuses_paths_that_escape_the_node(
    settings_store: RtdbSettingsStore, tenant: str, path: tuple[str, ...]
) -> None:
    with pytest.raises(ValueError, match="invalid settings path segment"):
        await settings_store.read(tenant, path)


async def test_store_refuses_invalid_tenant_ids(settings_store: RtdbSettingsStore) -> None:
    with pytest.raises(ValueError, match="invalid tenant id"):
        await settings_store.read_tree("../other")


@pytest.mark.parametrize("key", ["a%20b", "a%2541", "x%2Fy", "%2E%2E", "q?x=1", "spa ce", "ключ", "50%"])
async def test_a_key_is_stored_literally_whatever_its_url_escapes(
    settings_store: RtdbSettingsStore, tenant: str, key: str
) -> None:
    node = await settings_store.write(tenant, ("odd", key), {"v": 1}, updated_at=3)
    assert node == {"v": 1, "updated_at": 3}
    # The tree shows the key exactly as written: RTDB decoded the URL back to it, once.
    assert await settings_store.read(tenant, ("odd",)) == {key: {"v": 1, "updated_at": 3}}
