"""Writes whose answer is lost: the emulator applies them, then never answers (``rtdb_faults``).

No write is applied twice: firebase-admin's session would re-send it after the timeout, so a merge
landed twice, an ``If-Match`` write that was stored came back as a conflict, and a replayed write
undid one acknowledged in between. The storage-policy transaction recognises its own write by the
write id in the node; a generic write whose answer is lost fails (502) instead of being replayed.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Final

import pytest

from botmox_api.model import IfMatch, JsonValue, StoragePolicy, StoragePolicyChanges, StoreQueryFailed
from botmox_api.stores._rtdb import RtdbTarget, settings_path, storage_policy_path
from botmox_api.stores.rtdb_settings import RtdbSettingsStore
from botmox_api.stores.rtdb_storage_policy import RtdbStoragePolicyStore
from harness.fixtures.rtdb import EmulatorFaults

# How long a writer waits for an answer that never comes.
LOST_ANSWER_TIMEOUT_S: Final = 1.0
# The same, where another writer must get in meanwhile: ample room on a loaded machine.
INTERLEAVED_TIMEOUT_S: Final = 3.0
SEED: Final = StoragePolicyChanges(operational="local")


@pytest.fixture
async def policy(rtdb_target: RtdbTarget) -> AsyncIterator[RtdbStoragePolicyStore]:
    store = RtdbStoragePolicyStore(rtdb_target)
    yield store
    await store.aclose()


@pytest.fixture
async def policy_losing(rtdb_target: RtdbTarget) -> AsyncIterator[RtdbStoragePolicyStore]:
    """The writer whose answers the tests drop; a separate app, as a second API instance would be."""
    store = RtdbStoragePolicyStore(rtdb_target, http_timeout_s=LOST_ANSWER_TIMEOUT_S)
    yield store
    await store.aclose()


@pytest.fixture
async def policy_interleaved(rtdb_target: RtdbTarget) -> AsyncIterator[RtdbStoragePolicyStore]:
    store = RtdbStoragePolicyStore(rtdb_target, http_timeout_s=INTERLEAVED_TIMEOUT_S)
    yield store
    await store.aclose()


@pytest.fixture
async def settings_losing(rtdb_target: RtdbTarget) -> AsyncIterator[RtdbSettingsStore]:
    store = RtdbSettingsStore(rtdb_target, http_timeout_s=LOST_ANSWER_TIMEOUT_S)
    yield store
    await store.aclose()


@pytest.fixture
async def settings_interleaved(rtdb_target: RtdbTarget) -> AsyncIterator[RtdbSettingsStore]:
    store = RtdbSettingsStore(rtdb_target, http_timeout_s=INTERLEAVED_TIMEOUT_S)
    yield store
    await store.aclose()


async def _landed(faults: EmulatorFaults) -> None:
    """Returns once the emulator has applied the write whose answer it drops."""
    deadline = time.monotonic() + 10
    while await asyncio.to_thread(faults.armed):
        assert time.monotonic() < deadline, "the write never reached the emulator"
        await asyncio.sleep(0.01)


def _assert_lost(raised: pytest.ExceptionInfo[StoreQueryFailed], message: str) -> None:
    assert (raised.value.backend, raised.value.message) == ("rtdb", message)
    assert raised.value.details == {"reason": f"RTDB did not answer within {INTERLEAVED_TIMEOUT_S:g} s"}


async def _write(
    store: RtdbStoragePolicyStore, mode: str, tenant: str, if_match: IfMatch | None
) -> StoragePolicy:
    changes = StoragePolicyChanges(sync_enabled=True)
    if mode == "replace":
        return await store.replace(tenant, changes, updated_by="writer", if_match=if_match)
    return await store.merge(tenant, changes, updated_by="writer", if_match=if_match)


@pytest.mark.parametrize("mode", ["replace", "merge"])
@pytest.mark.parametrize(
    "if_match", [None, IfMatch(versions=frozenset({1})), IfMatch(any_version=True)], ids=["none", "v1", "any"]
)
async def test_policy_write_whose_answer_is_lost_lands_once_and_succeeds(
    policy: RtdbStoragePolicyStore,
    policy_losing: RtdbStoragePolicyStore,
    rtdb_faults: EmulatorFaults,
    tenant: str,
    mode: str,
    if_match: IfMatch | None,
) -> None:
    await policy.replace(tenant, SEED, updated_by="seed")
    rtdb_faults.drop_answer("PUT", storage_policy_path(tenant))

    written = await _write(policy_losing, mode, tenant, if_match)

    assert rtdb_faults.armed() == []  # the answer really was lost
    # One version bump, and the answer is the write that landed (not a 412 for the writer's own write).
    assert written.version == 2
    assert (written.sync_enabled, written.updated_by) == (True, "writer")
    assert written.operational == ("local" if mode == "merge" else "cloud")
    assert await policy.read(tenant) == written


async def test_policy_write_whose_answer_is_lost_is_not_replayed_over_a_later_write(
    policy: RtdbStoragePolicyStore,
    policy_interleaved: RtdbStoragePolicyStore,
    rtdb_faults: EmulatorFaults,
    tenant: str,
) -> None:
    await policy.replace(tenant, SEED, updated_by="seed")
    rtdb_faults.drop_answer("PUT", storage_policy_path(tenant))
    lost = asyncio.create_task(
        policy_interleaved.replace(tenant, StoragePolicyChanges(operational="cloud"), updated_by="lost")
    )
    await _landed(rtdb_faults)
    later = await policy.merge(tenant, StoragePolicyChanges(sync_enabled=True), updated_by="later")
    assert (later.version, later.operational, later.sync_enabled) == (3, "cloud", True)

    # The lost writer cannot tell its write landed (another one replaced it): it reports the failure
    # and does not apply its replace again over the acknowledged merge.
    with pytest.raises(StoreQueryFailed) as raised:
        await lost
    _assert_lost(raised, "Failed to write storage policy to RTDB")
    assert await policy.read(tenant) == later


@pytest.mark.parametrize(
    ("method", "path", "body", "later_body"),
    [
        ("PATCH", ("alerts",), {"warning_days": 7}, {"warning_days": 9}),
        ("PUT", ("limit",), 10, {"max": 3}),
        ("DELETE", ("alerts",), None, {"enabled": True}),
    ],
    ids=["merge", "replace", "delete"],
)
async def test_generic_write_whose_answer_is_lost_fails_and_is_not_replayed_over_a_later_write(
    settings_store: RtdbSettingsStore,
    settings_interleaved: RtdbSettingsStore,
    rtdb_faults: EmulatorFaults,
    tenant: str,
    method: str,
    path: tuple[str, ...],
    body: JsonValue,
    later_body: JsonValue,
) -> None:
    await settings_store.write(tenant, path, {"warning_days": 5}, updated_at=1)
    rtdb_faults.drop_answer(method, settings_path(tenant, path))
    lost = asyncio.create_task(settings_interleaved.write(tenant, path, body, updated_at=2))
    await _landed(rtdb_faults)
    later = await settings_store.write(tenant, path, later_body, updated_at=3)

    with pytest.raises(StoreQueryFailed) as raised:
        await lost
    _assert_lost(raised, "Failed to write settings to RTDB")
    assert await settings_store.read(tenant, path) == later


async def test_read_whose_answer_is_lost_is_retried(
    settings_losing: RtdbSettingsStore,
    settings_store: RtdbSettingsStore,
    rtdb_faults: EmulatorFaults,
    tenant: str,
) -> None:
    # Reads keep firebase-admin's retry: re-sending a GET changes nothing.
    stored = await settings_store.write(tenant, ("alerts",), {"warning_days": 5}, updated_at=1)
    rtdb_faults.drop_answer("GET", settings_path(tenant, ("alerts",)))
    assert await settings_losing.read(tenant, ("alerts",)) == stored
    assert rtdb_faults.armed() == []
