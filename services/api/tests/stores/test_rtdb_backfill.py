"""The RTDB store's backfill calls where RTDB differs: the strict parse of a node (what a copy may
carry over), keys below ``tenants`` that are no tenant id, tenants with other settings only, the
conditional PUT (412, a lost answer) and the legacy global ``settings/storage_policy`` node."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from botmox_api.model import (
    InvalidStoredPolicy,
    JsonValue,
    StoragePolicy,
    StoreQueryFailed,
    VersionConflict,
)
from botmox_api.stores._rtdb import (
    LEGACY_STORAGE_POLICY_PATH,
    RtdbTarget,
    resolve_rtdb_target,
    settings_path,
    storage_policy_path,
)
from botmox_api.stores._rtdb_rest import RtdbRestClient
from botmox_api.stores.protocols import LegacyStoragePolicySource
from botmox_api.stores.rtdb_storage_policy import (
    RtdbStoragePolicyStore,
    node_from_policy,
    policy_from_node,
    stored_policy_from_node,
)
from harness.fixtures.rtdb import EmulatorFaults

VALID: dict[str, Any] = {
    "secrets": "local-only",
    "operational": "local",
    "sync": {"enabled": True},
    "updated_at": 1_700_000_000_123,
    "updated_by": "uid-1",
    "version": 4,
    "write_id": "0123abcd",
}
POLICY = StoragePolicy("local", True, 1_700_000_000_123, "uid-1", 4)


@pytest.fixture
async def store(rtdb_target: RtdbTarget) -> AsyncIterator[RtdbStoragePolicyStore]:
    store = RtdbStoragePolicyStore(rtdb_target)
    yield store
    await store.aclose()


@pytest.fixture
async def raw(rtdb_target: RtdbTarget) -> AsyncIterator[RtdbRestClient]:
    """Writes nodes as hand edits and the legacy server would, bypassing the store."""
    client = RtdbRestClient(rtdb_target)
    yield client
    await client.aclose()


# --- The strict parse.


def test_a_valid_node_parses_as_the_api_reads_it() -> None:
    assert stored_policy_from_node(VALID) == POLICY == policy_from_node(VALID)
    assert stored_policy_from_node(node_from_policy(POLICY, "w")) == POLICY


def test_a_legacy_node_without_version_secrets_or_write_id_is_version_1() -> None:
    legacy = {key: value for key, value in VALID.items() if key not in ("version", "secrets", "write_id")}
    assert stored_policy_from_node(legacy) == StoragePolicy("local", True, 1_700_000_000_123, "uid-1", 1)


def test_nothing_stored_is_none() -> None:
    assert stored_policy_from_node(None) is None


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"colour": "red"}, "unexpected key 'colour'"),
        ({"secrets": "cloud"}, "secrets must be 'local-only', not 'cloud'"),
        ({"operational": None}, "operational is missing"),
        ({"operational": "hybrid"}, "operational must be 'local' or 'cloud', not 'hybrid'"),
        ({"sync": None}, "sync.enabled is missing"),
        ({"sync": "on"}, "sync must be an object, not 'on'"),
        ({"sync": {"enabled": True, "interval": 5}}, "unexpected key 'sync.interval'"),
        ({"sync": {}}, "sync.enabled is missing"),
        ({"sync": {"enabled": "true"}}, "sync.enabled must be true or false, not 'true'"),
        ({"updated_at": None}, "updated_at is missing"),
        ({"updated_at": -1}, "updated_at must be an integer >= 0, not -1"),
        ({"updated_at": 1.5}, "updated_at must be an integer >= 0, not 1.5"),
        ({"updated_at": True}, "updated_at must be an integer >= 0, not True"),
        ({"updated_at": "1700000000123"}, "updated_at must be an integer >= 0, not '1700000000123'"),
        ({"updated_by": None}, "updated_by is missing"),
        ({"updated_by": ""}, "updated_by must be a non-empty string, not ''"),
        ({"updated_by": 42}, "updated_by must be a non-empty string, not 42"),
        ({"version": 0}, "version must be an integer >= 1, not 0"),
        ({"version": "4"}, "version must be an integer >= 1, not '4'"),
    ],
)
def test_an_invalid_node_names_the_field_and_what_is_wrong(change: dict[str, Any], reason: str) -> None:
    node = {key: value for key, value in {**VALID, **change}.items() if value is not None}

    parsed = stored_policy_from_node(node)

    assert isinstance(parsed, InvalidStoredPolicy)
    assert parsed.reason == reason
    lenient = policy_from_node(node)
    assert lenient is not None
    assert parsed.version == lenient.version  # what the API reads: a forced copy stays conditional


def test_every_problem_is_named() -> None:
    parsed = stored_policy_from_node({**VALID, "operational": "x", "extra": 1, "version": -3})
    assert parsed == InvalidStoredPolicy(
        "unexpected key 'extra'; operational must be 'local' or 'cloud', not 'x';"
        " version must be an integer >= 1, not -3",
        version=1,
    )


@pytest.mark.parametrize("node", ["local", 5, True, ["a"]])
def test_a_node_that_is_no_object_is_invalid(node: JsonValue) -> None:
    parsed = stored_policy_from_node(node)
    assert isinstance(parsed, InvalidStoredPolicy)
    assert parsed.reason.startswith("the node is not an object")
    assert parsed.version is None  # the API reads nothing stored


# --- Listing and reading what is below ``tenants``.


async def test_every_key_below_tenants_is_listed_and_read_reports_the_invalid(
    store: RtdbStoragePolicyStore, raw: RtdbRestClient
) -> None:
    await raw.set(storage_policy_path("t-good"), VALID)
    await raw.set(storage_policy_path("t-bad"), {**VALID, "operational": "hybrid"})
    await raw.set(settings_path("t-other", ("alerts",)), {"warning_days": 5})  # no storage policy
    # Keys RTDB allows that are no tenant id (upper case, a space, a percent sign): a hand edit.
    for key in ("Upper", "a b", "x%2Fy"):
        await raw.set(
            f"tenants/{key.replace(' ', '%20').replace('%2F', '%252F')}/settings/storage_policy", VALID
        )

    listed = [batch async for batch in store.tenant_batches(100)]
    tenants = listed[0]
    assert listed == [sorted(tenants)]
    assert set(tenants) == {"t-good", "t-bad", "t-other", "Upper", "a b", "x%2Fy"}

    stored = await store.read_stored(tenants)

    assert stored == {
        "t-good": POLICY,
        "t-bad": InvalidStoredPolicy("operational must be 'local' or 'cloud', not 'hybrid'", version=4),
        "Upper": InvalidStoredPolicy("invalid tenant id 'Upper'"),
        "a b": InvalidStoredPolicy("invalid tenant id 'a b'"),
        "x%2Fy": InvalidStoredPolicy("invalid tenant id 'x%2Fy'"),
    }  # t-other: nothing stored, left out


async def test_read_stored_reads_at_most_read_concurrency_nodes_at_once(
    rtdb_target: RtdbTarget, raw: RtdbRestClient
) -> None:
    tenants = [f"t-{index:02d}" for index in range(12)]
    for tenant in tenants:
        await raw.set(storage_policy_path(tenant), VALID)
    store = RtdbStoragePolicyStore(rtdb_target, read_concurrency=3)
    in_flight = peak = 0
    get = store._rtdb.get

    async def counting_get(path: str, *, shallow: bool = False) -> JsonValue:
        nonlocal in_flight, peak
        in_flight += 1
        peak = max(peak, in_flight)
        try:
            await asyncio.sleep(0.01)
            return await get(path, shallow=shallow)
        finally:
            in_flight -= 1

    store._rtdb.get = counting_get  # type: ignore[method-assign]
    try:
        stored = await store.read_stored(tenants)
    finally:
        await store.aclose()
    assert stored == dict.fromkeys(tenants, POLICY)
    assert peak == 3


async def test_a_failing_read_is_a_query_failure() -> None:
    target = resolve_rtdb_target(
        database_url="https://ns.firebaseio.com",
        project_id=None,
        emulator_host="127.0.0.1:9",
        credentials_path=None,
    )
    assert target is not None
    store = RtdbStoragePolicyStore(target, http_timeout_s=0.5)
    try:
        with pytest.raises(StoreQueryFailed) as read:
            await store.read_stored(["t-a", "t-b"])
        with pytest.raises(StoreQueryFailed) as listed:
            [batch async for batch in store.tenant_batches(10)]
    finally:
        await store.aclose()
    assert read.value.message == listed.value.message == "Failed to read storage policy from RTDB"


# --- The conditional write.


async def test_write_stored_checks_the_version_the_api_reads(
    store: RtdbStoragePolicyStore, raw: RtdbRestClient
) -> None:
    # A legacy node without a version reads as version 1, and an invalid one as what the API reads.
    legacy = {key: value for key, value in VALID.items() if key != "version"}
    await raw.set(storage_policy_path("t-legacy"), legacy)
    with pytest.raises(VersionConflict) as raised:
        await store.write_stored("t-legacy", POLICY, expected_version=None)
    assert raised.value.current_version == 1
    await store.write_stored("t-legacy", POLICY, expected_version=1)
    assert await store.read("t-legacy") == POLICY

    # A scalar where the node should be: the API reads nothing stored, so a copy may replace it.
    await raw.set(storage_policy_path("t-scalar"), "cloud")
    await store.write_stored("t-scalar", POLICY, expected_version=None)
    assert await store.read("t-scalar") == POLICY


async def test_a_write_between_the_read_and_the_put_is_a_conflict(
    store: RtdbStoragePolicyStore, raw: RtdbRestClient
) -> None:
    await store.write_stored("t-race", POLICY, expected_version=None)
    get_with_etag = store._rtdb.get_with_etag

    async def read_then_lose_the_race(path: str) -> tuple[JsonValue, str | None]:
        read = await get_with_etag(path)
        # Another process (the API) writes meanwhile; this store holds the node's turn.
        await raw.set(path, node_from_policy(StoragePolicy("cloud", False, 6, "uid-api", 5), "api-write"))
        return read

    store._rtdb.get_with_etag = read_then_lose_the_race  # type: ignore[method-assign]
    with pytest.raises(VersionConflict) as raised:
        await store.write_stored("t-race", StoragePolicy("cloud", False, 1, "copy", 9), expected_version=4)

    assert raised.value.current_version == 5  # the API's write, which the PUT did not overwrite
    assert await store.read("t-race") == StoragePolicy("cloud", False, 6, "uid-api", 5)


async def test_a_copy_whose_answer_is_lost_is_recognised_by_its_write_id(
    store: RtdbStoragePolicyStore, rtdb_target: RtdbTarget, rtdb_faults: EmulatorFaults
) -> None:
    losing = RtdbStoragePolicyStore(rtdb_target, http_timeout_s=1.0)
    rtdb_faults.drop_answer("PUT", storage_policy_path("t-lost"))
    try:
        await losing.write_stored("t-lost", POLICY, expected_version=None)
    finally:
        await losing.aclose()
    assert rtdb_faults.armed() == []
    assert await store.read("t-lost") == POLICY


async def test_write_stored_refuses_an_invalid_tenant_id(store: RtdbStoragePolicyStore) -> None:
    with pytest.raises(ValueError, match="invalid tenant id"):
        await store.write_stored("../settings", POLICY, expected_version=None)


# --- The legacy node (root ``settings/storage_policy``, outside ``tenants``).


async def test_no_legacy_node(store: RtdbStoragePolicyStore) -> None:
    source: LegacyStoragePolicySource = store  # the protocol the cutover tool codes against
    assert await source.read_legacy() is None
    with pytest.raises(VersionConflict) as raised:
        await source.remove_legacy(expected_version=1)
    assert raised.value.current_version is None


async def test_the_legacy_node_is_read_strictly_and_removed_conditionally(
    store: RtdbStoragePolicyStore, raw: RtdbRestClient
) -> None:
    legacy: JsonValue = {
        "operational": "local",
        "sync": {"enabled": True},
        "updated_at": 5,
        "updated_by": "old-server",
    }
    await raw.set(LEGACY_STORAGE_POLICY_PATH, legacy)
    await raw.set("settings/other", {"kept": True})
    assert await store.read_legacy() == StoragePolicy("local", True, 5, "old-server", 1)
    assert [batch async for batch in store.tenant_batches(10)] == []  # not a tenant

    with pytest.raises(VersionConflict) as raised:
        await store.remove_legacy(expected_version=2)
    assert raised.value.current_version == 1
    assert await raw.get(LEGACY_STORAGE_POLICY_PATH) == legacy

    await store.remove_legacy(expected_version=1)
    assert await store.read_legacy() is None
    assert await raw.get("settings/other") == {"kept": True}


async def test_an_invalid_legacy_node_is_reported(store: RtdbStoragePolicyStore, raw: RtdbRestClient) -> None:
    await raw.set(LEGACY_STORAGE_POLICY_PATH, {"operational": "cloud", "sync": {"enabled": 1}})
    assert await store.read_legacy() == InvalidStoredPolicy(
        "sync.enabled must be true or false, not 1; updated_at is missing; updated_by is missing", version=1
    )


async def test_a_legacy_removal_whose_answer_is_lost_succeeds(
    store: RtdbStoragePolicyStore, raw: RtdbRestClient, rtdb_target: RtdbTarget, rtdb_faults: EmulatorFaults
) -> None:
    await raw.set(LEGACY_STORAGE_POLICY_PATH, VALID)
    losing = RtdbStoragePolicyStore(rtdb_target, http_timeout_s=1.0)
    rtdb_faults.drop_answer("PUT", LEGACY_STORAGE_POLICY_PATH)
    try:
        await losing.remove_legacy(expected_version=4)
    finally:
        await losing.aclose()
    assert rtdb_faults.armed() == []
    assert await store.read_legacy() is None
