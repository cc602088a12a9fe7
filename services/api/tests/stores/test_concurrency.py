"""Concurrent writers on one node: no lost update, and one winner per If-Match race.

Run on the real servers for every store; the numbers (200 merges, 20 racers) are those of the
foundation and API issues.
"""

from __future__ import annotations

import asyncio
import random

import pytest

from botmox_api.model import IfMatch, StoragePolicy, StoragePolicyChanges, VersionConflict
from botmox_api.stores.protocols import StoragePolicyStore
from botmox_api.stores.rtdb_settings import RtdbSettingsStore

MERGES = 200
RACERS = 20


def _random_change(rng: random.Random) -> StoragePolicyChanges:
    if rng.random() < 0.5:
        return StoragePolicyChanges(operational=rng.choice(["local", "cloud"]))
    return StoragePolicyChanges(sync_enabled=rng.choice([True, False]))


async def test_concurrent_merges_lose_no_update(policy_store: StoragePolicyStore, tenant: str) -> None:
    rng = random.Random(1234)
    changes = [_random_change(rng) for _ in range(MERGES)]
    results = await asyncio.gather(
        *(policy_store.merge(tenant, change, updated_by=f"w{index}") for index, change in enumerate(changes))
    )
    # Every merge got its own version: none was applied over a stale document and then overwritten.
    assert sorted(result.version for result in results) == list(range(1, MERGES + 1))
    # Replaying the merges in version order gives each intermediate document and the final one.
    by_version = sorted(zip(results, changes, strict=True), key=lambda pair: pair[0].version)
    operational, sync_enabled = "cloud", False
    for result, change in by_version:
        operational = change.operational if change.operational is not None else operational
        sync_enabled = change.sync_enabled if change.sync_enabled is not None else sync_enabled
        assert (result.operational, result.sync_enabled) == (operational, sync_enabled)
    stored = await policy_store.read(tenant)
    assert stored is not None
    assert (stored.version, stored.operational, stored.sync_enabled) == (MERGES, operational, sync_enabled)


@pytest.mark.parametrize("mode", ["replace", "merge"])
async def test_racing_if_match_writes_have_exactly_one_winner(
    policy_store: StoragePolicyStore, tenant: str, mode: str
) -> None:
    base = await policy_store.replace(tenant, StoragePolicyChanges(), updated_by="setup")
    write = policy_store.replace if mode == "replace" else policy_store.merge

    async def racer(index: int) -> StoragePolicy | VersionConflict:
        try:
            return await write(
                tenant,
                StoragePolicyChanges(sync_enabled=True),
                updated_by=f"racer-{index}",
                if_match=IfMatch(versions=frozenset({base.version})),
            )
        except VersionConflict as conflict:
            return conflict

    outcomes = await asyncio.gather(*(racer(index) for index in range(RACERS)))
    winners = [outcome for outcome in outcomes if isinstance(outcome, StoragePolicy)]
    conflicts = [outcome for outcome in outcomes if isinstance(outcome, VersionConflict)]
    assert len(winners) == 1
    assert len(conflicts) == RACERS - 1
    assert winners[0].version == base.version + 1
    assert await policy_store.read(tenant) == winners[0]


async def test_concurrent_settings_writes_of_different_children_lose_nothing(
    settings_store: RtdbSettingsStore, tenant: str
) -> None:
    await asyncio.gather(
        *(
            settings_store.write(tenant, ("generators",), {f"field_{index}": index}, updated_at=index + 1)
            for index in range(MERGES)
        )
    )
    node = await settings_store.read(tenant, ("generators",))
    assert isinstance(node, dict)
    assert {key: value for key, value in node.items() if key != "updated_at"} == {
        f"field_{index}": index for index in range(MERGES)
    }
    assert node["updated_at"] in range(1, MERGES + 1)
