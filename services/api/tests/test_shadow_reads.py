"""Shadow reads (``STORAGE_POLICY_SHADOW=on``): every served storage_policy read is compared with the
other backend off the request path; the answers never change, whatever the other backend does.

Memory stores here (the primary an RTDB-like store, the shadow the Supabase one, as the factory builds
them in ``rtdb`` mode); ``test_shadow_reads_real.py`` runs the same check on the real stores.
"""

from __future__ import annotations

import asyncio
import io
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, Final

import httpx
import pytest
from api_fakes import MemoryStoragePolicyStore, memory_store_set
from api_support import API_TOKEN, bearer, data, make_settings, running, user
from fastapi import FastAPI

from botmox_api.app import create_app
from botmox_api.logs import build_logger
from botmox_api.model import StoragePolicy, StoreQueryFailed
from botmox_api.routes import storage_policy_direct
from botmox_api.shadow_reads import (
    FAILED_EVENT,
    MISMATCH_EVENT,
    SUMMARY_EVENT,
    ShadowCounts,
    ShadowReads,
)
from botmox_api.stores.protocols import StoreSet

POLICY: Final = "/api/v1/settings/storage_policy"
# Every spelling that serves the policy: its own route, the generic route's, the whole tree's.
SPELLINGS: Final = (POLICY, "/api/v1/settings/settings/storage_policy", "/api/v1/settings")
# Values that must never reach a log line: a policy is tenant data.
SECRET_AUTHOR: Final = "author-who-must-not-be-logged"


def _policy(operational: Any = "cloud", *, version: int = 3, by: str = SECRET_AUTHOR) -> StoragePolicy:
    return StoragePolicy(operational, True, 1_700_000_000_123, by, version)


def _primary(stores: StoreSet) -> MemoryStoragePolicyStore:
    assert isinstance(stores.storage_policy, MemoryStoragePolicyStore)
    return stores.storage_policy


def _shadow(stores: StoreSet) -> MemoryStoragePolicyStore:
    assert isinstance(stores.shadow, MemoryStoragePolicyStore)
    return stores.shadow


class Api:
    def __init__(self, app: FastAPI, client: httpx.AsyncClient, stream: io.StringIO) -> None:
        self.app = app
        self.client = client
        self._stream = stream

    @property
    def shadow(self) -> ShadowReads:
        reads: ShadowReads = self.app.state.shadow_reads
        return reads

    def lines(self, *events: str) -> list[dict[str, Any]]:
        logged = [json.loads(line) for line in self._stream.getvalue().splitlines()]
        return [line for line in logged if line["event"] in events]

    def text(self) -> str:
        return self._stream.getvalue()


@asynccontextmanager
async def shadowed_api(stores: StoreSet, **overrides: Any) -> AsyncIterator[Api]:
    stream = io.StringIO()
    settings = make_settings(storage_policy_shadow=True, **overrides)
    app = create_app(settings, stores=stores, log_stream=stream)
    async with running(app) as client:
        yield Api(app, client, stream)


@pytest.fixture
def through_fastapi(monkeypatch: pytest.MonkeyPatch) -> None:
    """Leaves the storage-policy operations to the FastAPI routes (the direct route steps aside)."""
    monkeypatch.setattr(storage_policy_direct, "DIRECT_METHODS", frozenset())


async def _answers(client: httpx.AsyncClient, headers: dict[str, str]) -> list[tuple[int, str | None, Any]]:
    answers = []
    for path in SPELLINGS:
        response = await client.get(path, headers=headers)
        answers.append((response.status_code, response.headers.get("etag"), response.json()))
    return answers


async def test_matching_data_counts_every_spelling_and_nothing_mismatched() -> None:
    stores = memory_store_set(shadow=True)
    for store in (_primary(stores), _shadow(stores)):
        store.policies["tenant-a"] = _policy()
    async with shadowed_api(stores) as api:
        answers = await _answers(api.client, user("tenant-a"))
        assert await _answers(api.client, user("tenant-b")) == [
            (200, None, {"success": True, "data": x}) for x in (None, None, {})
        ]
        await api.shadow.settled()
        assert api.shadow.counts() == ShadowCounts(offered=6, compared=6, matched=6)
    assert [answer[:2] for answer in answers] == [(200, '"3"'), (200, '"3"'), (200, None)]
    assert not api.lines(MISMATCH_EVENT, FAILED_EVENT)
    # One summary at shutdown, with nothing left unfinished.
    [summary] = api.lines(SUMMARY_EVENT)
    assert summary == {
        "event": SUMMARY_EVENT,
        "primary": "rtdb",
        "shadow": "supabase",
        "offered": 6,
        "compared": 6,
        "matched": 6,
        "mismatched": 0,
        "dropped": 0,
        "failed": 0,
        "unfinished": 0,
        "level": "info",
        "timestamp": summary["timestamp"],
    }


@pytest.mark.usefixtures("through_fastapi")
async def test_the_fastapi_routes_are_shadowed_too() -> None:
    stores = memory_store_set(shadow=True)
    _primary(stores).policies["tenant-a"] = _policy()
    _shadow(stores).policies["tenant-a"] = _policy("local")
    async with shadowed_api(stores) as api:
        await _answers(api.client, user("tenant-a"))
        await api.shadow.settled()
        assert api.shadow.counts() == ShadowCounts(offered=3, compared=3, mismatched=3)


async def test_a_mismatch_is_counted_and_logged_with_the_tenant_and_field_names_only() -> None:
    stores = memory_store_set(shadow=True)
    for tenant in ("tenant-a", "tenant-b"):
        _primary(stores).policies[tenant] = _policy()
        _shadow(stores).policies[tenant] = _policy()
    _shadow(stores).policies["tenant-b"] = _policy("local", version=4, by="other-" + SECRET_AUTHOR)
    _primary(stores).policies["tenant-c"] = _policy()  # the shadow has nothing for tenant-c
    async with shadowed_api(stores) as api:
        for tenant in ("tenant-a", "tenant-b", "tenant-c"):
            assert (await api.client.get(POLICY, headers=user(tenant))).status_code == 200
        await api.shadow.settled()
        assert api.shadow.counts() == ShadowCounts(offered=3, compared=3, matched=1, mismatched=2)
    mismatches = [
        {key: line[key] for key in ("tenant_id", "primary", "shadow", "fields", "level")}
        for line in api.lines(MISMATCH_EVENT)
    ]
    assert sorted(mismatches, key=lambda line: line["tenant_id"]) == [
        {
            "tenant_id": "tenant-b",
            "primary": "rtdb",
            "shadow": "supabase",
            "fields": ["operational", "updated_by", "version"],
            "level": "warning",
        },
        {
            "tenant_id": "tenant-c",
            "primary": "rtdb",
            "shadow": "supabase",
            "fields": ["document"],
            "level": "warning",
        },
    ]
    for line in api.lines(MISMATCH_EVENT):
        assert set(line) == {"event", "tenant_id", "primary", "shadow", "fields", "level", "timestamp"}
    assert SECRET_AUTHOR not in api.text()
    assert '"local"' not in api.text()


class SlowStoragePolicyStore(MemoryStoragePolicyStore):
    """A backend that answers only when released (a distant or stuck database)."""

    def __init__(self) -> None:
        super().__init__(backend="supabase")
        self.reading = asyncio.Event()
        self.release = asyncio.Event()

    async def read(self, tenant_id: str, *, uid: str | None = None) -> StoragePolicy | None:
        self.reading.set()
        await self.release.wait()
        return await super().read(tenant_id, uid=uid)


async def test_a_slow_other_backend_delays_no_answer_and_a_full_queue_drops_and_counts() -> None:
    base = memory_store_set()
    slow = SlowStoragePolicyStore()
    stores = StoreSet(
        settings=base.settings,
        storage_policy=base.storage_policy,
        supabase=slow,
        supabase_configured=True,
        rtdb_configured=True,
        shadow=slow,
    )
    _primary(stores).policies["tenant-a"] = expected = _policy()
    async with shadowed_api(stores, storage_policy_shadow_queue=2, storage_policy_shadow_workers=1) as api:
        first = await api.client.get(POLICY, headers=user("tenant-a"))
        await slow.reading.wait()  # the one worker is now stuck on the other backend
        later = [await api.client.get(path, headers=user("tenant-a")) for path in SPELLINGS * 3]
        # Every answer came while the other backend still had not answered one read.
        assert not slow.release.is_set()
        for response in (first, *later[::3], *later[1::3]):
            assert (response.status_code, response.headers["etag"]) == (200, '"3"')
            assert data(response) == expected.to_document()
        assert [data(response) for response in later[2::3]] == [
            {"storage_policy": expected.to_document()}
        ] * 3
        assert api.shadow.counts() == ShadowCounts(offered=10, dropped=7)
        slow.release.set()
        await api.shadow.settled()
        assert api.shadow.counts() == ShadowCounts(offered=10, dropped=7, compared=3, mismatched=3)


async def test_shutdown_cancels_a_read_in_flight_and_abandons_the_queue() -> None:
    base = memory_store_set()
    slow = SlowStoragePolicyStore()
    stores = StoreSet(
        settings=base.settings,
        storage_policy=base.storage_policy,
        supabase=slow,
        supabase_configured=True,
        rtdb_configured=True,
        shadow=slow,
    )
    async with shadowed_api(stores, storage_policy_shadow_queue=5, storage_policy_shadow_workers=2) as api:
        for _ in range(4):
            assert (await api.client.get(POLICY, headers=user("tenant-a"))).status_code == 200
        await slow.reading.wait()
    [summary] = api.lines(SUMMARY_EVENT)
    assert (summary["offered"], summary["compared"], summary["unfinished"]) == (4, 0, 4)
    assert not slow.release.is_set()


@pytest.mark.parametrize(
    ("failure", "reason", "level"),
    [
        (
            StoreQueryFailed("supabase", "Failed", details={"reason": "Database unreachable"}),
            "Database unreachable",
            "warning",
        ),
        (RuntimeError(f"choked on {SECRET_AUTHOR}"), "RuntimeError", "error"),
    ],
)
async def test_a_failing_other_backend_changes_no_answer_and_is_counted(
    failure: Exception, reason: str, level: str
) -> None:
    stores = memory_store_set(shadow=True)
    _primary(stores).policies["tenant-a"] = _policy()
    without_shadow = memory_store_set()
    _primary(without_shadow).policies["tenant-a"] = _policy()

    class Failing(MemoryStoragePolicyStore):
        async def read(self, tenant_id: str, *, uid: str | None = None) -> StoragePolicy | None:
            raise failure

    failing = Failing(backend="supabase")
    stores = StoreSet(
        settings=stores.settings,
        storage_policy=stores.storage_policy,
        supabase=failing,
        supabase_configured=True,
        rtdb_configured=True,
        shadow=failing,
    )
    async with shadowed_api(stores) as api:
        answers = await _answers(api.client, user("tenant-a"))
        await api.shadow.settled()
        assert api.shadow.counts() == ShadowCounts(offered=3, failed=3)
    stream = io.StringIO()
    async with running(create_app(make_settings(), stores=without_shadow, log_stream=stream)) as client:
        assert answers == await _answers(client, user("tenant-a"))
    failures = api.lines(FAILED_EVENT)
    assert [(line["tenant_id"], line["reason"], line["level"]) for line in failures] == [
        ("tenant-a", reason, level)
    ] * 3
    assert SECRET_AUTHOR not in api.text()


async def test_a_failed_primary_read_offers_nothing() -> None:
    stores = memory_store_set(shadow=True)
    _primary(stores).failure = StoreQueryFailed("rtdb", "Failed", details={"reason": "down"})
    async with shadowed_api(stores) as api:
        assert (await api.client.get(POLICY, headers=bearer(API_TOKEN))).status_code == 502
        assert api.shadow.counts() == ShadowCounts()


async def test_the_summary_is_written_when_the_counts_changed() -> None:
    stream = io.StringIO()

    def summaries() -> list[dict[str, Any]]:
        lines = [json.loads(line) for line in stream.getvalue().splitlines()]
        return [line for line in lines if line["event"] == SUMMARY_EVENT]

    other = MemoryStoragePolicyStore(backend="supabase")
    shadow = ShadowReads(
        other,
        primary="rtdb",
        logger=build_logger(stream=stream),
        queue_size=10,
        workers=1,
        rate=1000,
        summary_interval_s=0.01,
    )
    shadow.start()
    try:
        shadow.offer("tenant-a", None)
        await shadow.settled()
        for _ in range(1000):  # the first interval after the comparison
            if summaries():
                break
            await asyncio.sleep(0.01)
        # Quiet counters write nothing more (a few intervals pass here).
        for _ in range(5):
            await asyncio.sleep(0.01)
        assert len(summaries()) == 1
        assert summaries()[0]["matched"] == 1
        assert "unfinished" not in summaries()[0]
    finally:
        await shadow.aclose()
    assert len(summaries()) == 2
    assert summaries()[1]["unfinished"] == 0


async def test_the_workers_start_at_most_rate_comparisons_per_second() -> None:
    """At one every 10 s, of three offers one is compared at once and the next 10 s later, long after
    the short wait here: the shadow's CPU is bounded by its rate whatever the traffic."""
    stream = io.StringIO()
    shadow = ShadowReads(
        MemoryStoragePolicyStore(backend="supabase"),
        primary="rtdb",
        logger=build_logger(stream=stream),
        queue_size=10,
        workers=4,
        rate=0.1,
    )
    shadow.start()
    try:
        for tenant in ("tenant-a", "tenant-b", "tenant-c"):
            shadow.offer(tenant, None)
        for _ in range(100):
            await asyncio.sleep(0.002)
        assert shadow.counts() == ShadowCounts(offered=3, compared=1, matched=1)
    finally:
        await shadow.aclose()
    [summary] = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert summary["unfinished"] == 2


def test_the_shadow_store_must_be_the_other_backend() -> None:
    with pytest.raises(ValueError, match="other backend"):
        ShadowReads(
            MemoryStoragePolicyStore(backend="rtdb"),
            primary="rtdb",
            logger=build_logger(stream=io.StringIO()),
            queue_size=1,
            workers=1,
            rate=1,
        )


def test_shadow_on_needs_a_store_set_with_a_shadow_store() -> None:
    with pytest.raises(ValueError, match="shadow store"):
        create_app(make_settings(storage_policy_shadow=True), stores=memory_store_set())


async def test_shadow_off_offers_nothing() -> None:
    stores = memory_store_set(shadow=True)
    _primary(stores).policies["tenant-a"] = _policy()
    stream = io.StringIO()
    app = create_app(make_settings(), stores=stores, log_stream=stream)
    assert app.state.shadow_reads is None
    async with running(app) as client:
        assert [answer[0] for answer in await _answers(client, user("tenant-a"))] == [200, 200, 200]
    assert "storage_policy_shadow" not in stream.getvalue()
