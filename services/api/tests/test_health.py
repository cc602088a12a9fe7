"""Health endpoints: no token, readiness rules per mode and REQUIRE_*_READY."""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import datetime

import httpx
import pytest
from api_fakes import MemorySettingsStore, MemoryStoragePolicyStore, memory_store_set
from api_support import client_for, data, make_settings

from botmox_api.model import Readiness
from botmox_api.readiness import ReadinessCache, StoreReadiness
from botmox_api.stores.protocols import StoreSet

UP, DOWN = Readiness(True), Readiness(False, "connection refused")


async def test_health(fake_api: httpx.AsyncClient) -> None:
    body = data(await fake_api.get("/api/v1/health"))
    assert body["service"] == "bot-mox-api-v1"
    assert body["data_backend"] == "rtdb"
    datetime.fromisoformat(body["timestamp"])
    assert {
        k: body[k] for k in ("supabase_configured", "supabase_ready", "rtdb_configured", "rtdb_ready")
    } == {"supabase_configured": True, "supabase_ready": True, "rtdb_configured": True, "rtdb_ready": True}
    assert isinstance(body["version"], str)


async def test_live(fake_api: httpx.AsyncClient) -> None:
    body = data(await fake_api.get("/api/v1/health/live"))
    assert body["status"] == "live"
    assert body["service"] == "bot-mox-api-v1"


@pytest.mark.parametrize(
    ("backend", "require_supabase", "supabase", "rtdb", "ready"),
    [
        ("rtdb", False, DOWN, UP, True),  # Supabase not routed to, not required
        ("rtdb", True, DOWN, UP, False),  # REQUIRE_SUPABASE_READY
        ("rtdb", False, UP, DOWN, False),  # RTDB always serves generic paths
        ("supabase", False, DOWN, UP, False),
        ("supabase", False, UP, UP, True),
    ],
)
async def test_ready(
    backend: str, require_supabase: bool, supabase: Readiness, rtdb: Readiness, ready: bool
) -> None:
    settings = make_settings(data_backend=backend, require_supabase_ready=require_supabase)
    async with client_for(
        settings, memory_store_set(supabase_readiness=supabase, rtdb_readiness=rtdb)
    ) as client:
        response = await client.get("/api/v1/health/ready")
    body = response.json()
    if ready:
        assert response.status_code == 200
        assert body["data"]["ready"] is True
        assert body["data"]["status"] == "ready"
        checks = body["data"]["checks"]
    else:
        assert response.status_code == 503
        assert body["error"]["code"] == "NOT_READY"
        assert body["error"]["details"]["ready"] is False
        checks = body["error"]["details"]["checks"]
    assert checks["supabase"]["required"] is (backend == "supabase" or require_supabase)
    assert checks["rtdb"]["required"] is True
    if not supabase.ready:
        assert checks["supabase"]["reason"] == "connection refused"


@pytest.mark.integration
async def test_ready_on_real_stores(api: httpx.AsyncClient, api_mode: str) -> None:
    response = await api.get("/api/v1/health/ready")
    assert response.status_code == 200, response.text
    health = data(await api.get("/api/v1/health"))
    assert health["data_backend"] == api_mode
    assert health["rtdb_ready"] is True
    assert health["supabase_configured"] is (api_mode == "supabase")


class ProbedStoreSet:
    """A store set (``store_set``) whose readiness probes are counted per store; ``gate``, when set,
    holds them until it opens. The answers are read when a probe runs."""

    def __init__(
        self,
        *,
        gate: asyncio.Event | None = None,
        supabase_readiness: Readiness = UP,
        rtdb_readiness: Readiness = UP,
    ) -> None:
        self.probes: Counter[str] = Counter()
        self.gate = gate
        self.supabase_readiness = supabase_readiness
        self.rtdb_readiness = rtdb_readiness
        self.store_set = StoreSet(
            settings=MemorySettingsStore(probe=lambda: self._probe("rtdb", self.rtdb_readiness)),
            storage_policy=MemoryStoragePolicyStore(),
            supabase=MemoryStoragePolicyStore(
                backend="supabase", probe=lambda: self._probe("supabase", self.supabase_readiness)
            ),
            supabase_configured=True,
            rtdb_configured=True,
        )

    async def _probe(self, store: str, answer: Readiness) -> Readiness:
        self.probes[store] += 1
        if self.gate is not None:
            await self.gate.wait()
        return answer


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_concurrent_callers_share_one_probe() -> None:
    stores = ProbedStoreSet(gate=asyncio.Event())
    cache = ReadinessCache(stores.store_set, ttl_s=1.0)
    callers = [asyncio.create_task(cache.current()) for _ in range(50)]
    await asyncio.sleep(0)  # every caller reaches the in-flight probe before it can answer
    assert stores.gate is not None
    stores.gate.set()
    answers = await asyncio.gather(*callers)
    assert stores.probes == {"supabase": 1, "rtdb": 1}
    assert set(answers) == {StoreReadiness(UP, UP)}


async def test_a_caller_that_goes_away_leaves_the_probe_to_the_others() -> None:
    stores = ProbedStoreSet(gate=asyncio.Event())
    cache = ReadinessCache(stores.store_set, ttl_s=1.0)
    leaving, staying = asyncio.create_task(cache.current()), asyncio.create_task(cache.current())
    await asyncio.sleep(0)
    leaving.cancel()
    assert stores.gate is not None
    stores.gate.set()
    assert await staying == StoreReadiness(UP, UP)
    assert stores.probes == {"supabase": 1, "rtdb": 1}


async def test_an_answer_is_reused_for_the_ttl_and_never_after() -> None:
    clock = FakeClock()
    stores = ProbedStoreSet()
    cache = ReadinessCache(stores.store_set, ttl_s=1.0, clock=clock)
    await cache.current()
    clock.now += 0.999
    await cache.current()
    assert stores.probes == {"supabase": 1, "rtdb": 1}
    clock.now += 0.001  # one TTL after the answer was known
    await cache.current()
    assert stores.probes == {"supabase": 2, "rtdb": 2}


async def test_a_failed_probe_is_kept_as_long_and_then_probed_again() -> None:
    clock = FakeClock()
    stores = ProbedStoreSet(supabase_readiness=DOWN, rtdb_readiness=DOWN)
    cache = ReadinessCache(stores.store_set, ttl_s=1.0, clock=clock)
    for _ in range(5):
        assert await cache.current() == StoreReadiness(DOWN, DOWN)
        clock.now += 0.1
    assert stores.probes == {"supabase": 1, "rtdb": 1}
    stores.supabase_readiness = stores.rtdb_readiness = UP
    clock.now += 0.5
    assert await cache.current() == StoreReadiness(UP, UP)
    assert stores.probes == {"supabase": 2, "rtdb": 2}


async def test_a_check_that_does_not_answer_is_not_ready_after_the_timeout() -> None:
    stores = ProbedStoreSet(gate=asyncio.Event())  # never opened
    cache = ReadinessCache(stores.store_set, ttl_s=1.0, check_timeout_s=0.01)
    timed_out = Readiness(False, "Check timed out after 0.01 s")
    assert await cache.current() == StoreReadiness(timed_out, timed_out)


@pytest.mark.parametrize(("ttl_s", "probes"), [(60.0, 1), (0.0, 3)])
async def test_health_cache_ttl_s_sets_how_long_health_answers_are_reused(ttl_s: float, probes: int) -> None:
    stores = ProbedStoreSet()
    async with client_for(make_settings(health_cache_ttl_s=ttl_s), stores.store_set) as client:
        for path in ("/api/v1/health/ready", "/api/v1/health", "/api/v1/health/ready"):
            assert (await client.get(path)).status_code == 200
    assert stores.probes == {"supabase": probes, "rtdb": probes}
