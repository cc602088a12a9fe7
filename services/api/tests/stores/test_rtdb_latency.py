"""A distant RTDB (the emulator answering late, ``rtdb_faults.latency``): calls wait for it together,
on the event loop, without a thread each.

The bound separates the two designs by a wide margin rather than measuring speed: with a thread
per call and 10 threads (the previous transport), 64 calls of 1 s each need at least 7 s; waiting
together, they need about 1 s. ``RTDB_MAX_CONNECTIONS`` is what bounds them instead.
"""

from __future__ import annotations

import asyncio
import math
import threading
import time
from typing import Final

from botmox_api.config import ApiSettings
from botmox_api.model import StoragePolicyChanges
from botmox_api.stores._rtdb import RtdbTarget
from botmox_api.stores.factory import stores_for
from botmox_api.stores.rtdb_settings import RtdbSettingsStore
from botmox_api.stores.rtdb_storage_policy import RtdbStoragePolicyStore
from harness.fixtures.rtdb import EmulatorFaults
from harness.rtdb.process import RtdbEmulatorProcess

LATENCY_MS: Final = 1000
CALLS: Final = 64
OLD_THREADS: Final = 10
BOUND_S: Final = 4.0


async def _peak_threads(done: asyncio.Event) -> int:
    peak = threading.active_count()
    while not done.is_set():
        peak = max(peak, threading.active_count())
        await asyncio.sleep(0.01)
    return peak


async def test_calls_wait_for_rtdb_together_without_a_thread_each(
    settings_store: RtdbSettingsStore, rtdb_faults: EmulatorFaults, tenant: str
) -> None:
    stored = await settings_store.write(tenant, ("alerts",), {"warning_days": 7}, updated_at=1)
    rtdb_faults.latency(LATENCY_MS)
    threads_before = threading.active_count()
    done = asyncio.Event()
    sampler = asyncio.create_task(_peak_threads(done))

    began = time.monotonic()
    answers = await asyncio.gather(*(settings_store.read(tenant, ("alerts",)) for _ in range(CALLS)))
    elapsed = time.monotonic() - began
    done.set()
    peak = await sampler

    assert answers == [stored] * CALLS
    assert elapsed >= LATENCY_MS / 1000  # the delay was really armed
    assert math.ceil(CALLS / OLD_THREADS) * LATENCY_MS / 1000 > BOUND_S
    assert elapsed < BOUND_S, f"{CALLS} calls took {elapsed:.1f} s: they waited in turn"
    assert peak <= threads_before, f"{peak - threads_before} more threads while the calls waited"


async def test_transactions_on_different_nodes_wait_together(
    rtdb_target: RtdbTarget, rtdb_faults: EmulatorFaults, tenant: str
) -> None:
    store = RtdbStoragePolicyStore(rtdb_target)
    try:
        rtdb_faults.latency(LATENCY_MS)
        began = time.monotonic()
        # Each write is two round trips (GET with its ETag, conditional PUT).
        written = await asyncio.gather(
            *(
                store.replace(f"{tenant}-{index}", StoragePolicyChanges(operational="local"), updated_by="u")
                for index in range(CALLS)
            )
        )
        elapsed = time.monotonic() - began
    finally:
        await store.aclose()
    assert [policy.version for policy in written] == [1] * CALLS
    assert elapsed < 2 * BOUND_S, f"{CALLS} writes took {elapsed:.1f} s: they waited in turn"


async def test_rtdb_max_connections_bounds_the_calls_a_store_has_in_flight(
    rtdb_emulator: RtdbEmulatorProcess, rtdb_namespace: str, rtdb_faults: EmulatorFaults, tenant: str
) -> None:
    settings = ApiSettings(  # type: ignore[call-arg]
        _env_file=None,
        firebase_database_url=f"https://{rtdb_namespace}.firebaseio.com",
        firebase_database_emulator_host=rtdb_emulator.host,
        rtdb_max_connections=2,
    )
    stores = stores_for(settings)
    try:
        rtdb_faults.latency(LATENCY_MS / 2)
        began = time.monotonic()
        await asyncio.gather(*(stores.settings.read(tenant, ("alerts",)) for _ in range(4)))
        elapsed = time.monotonic() - began
    finally:
        await stores.aclose()
    # Two connections, four calls: two rounds (a lower bound, which no load can break).
    assert elapsed >= 2 * LATENCY_MS / 2 / 1000
