"""The copy engine on in-memory stores: every decision, idempotency, dry run, --force, conflicts,
resuming after an interruption or a backend failure, and the legacy node's adoption."""

from __future__ import annotations

import asyncio
import dataclasses
from pathlib import Path

import pytest
from cutover_fakes import FakeStore, backends, policy

from botmox_api.config import ApiSettings
from botmox_api.cutover import checkpoint
from botmox_api.cutover.backends import deployment_of
from botmox_api.cutover.backfill import Backfill, BackfillOptions, BackfillResult
from botmox_api.cutover.decisions import Decision
from botmox_api.cutover.legacy import NOT_ADOPTED, LegacyAction
from botmox_api.cutover.progress import LineProgress
from botmox_api.cutover.survey import Backends
from botmox_api.model import DataBackend, InvalidStoredPolicy, StoreQueryFailed

CHECKPOINT = Path("cp.json")


def checkpoint_exists() -> bool:
    return CHECKPOINT.exists()


class Lines:
    def __init__(self) -> None:
        self.text = ""

    def write(self, text: str) -> int:
        self.text += text
        return len(text)

    def flush(self) -> None:
        return None

    def isatty(self) -> bool:
        return False


async def run(
    stores: Backends,
    source: DataBackend = "rtdb",
    target: DataBackend = "supabase",
    *,
    stop: asyncio.Event | None = None,
    **options: object,
) -> BackfillResult:
    settings = BackfillOptions(source=source, target=target, checkpoint_path=CHECKPOINT, batch_size=2)
    settings = dataclasses.replace(settings, **options)  # type: ignore[arg-type]
    progress = LineProgress("backfill", Lines())  # type: ignore[arg-type]
    return await Backfill(stores, settings).run(progress, stop or asyncio.Event())


def seed(store: FakeStore, count: int, *, prefix: str = "t") -> list[str]:
    tenants = [f"{prefix}{i:05d}" for i in range(count)]
    for i, tenant in enumerate(tenants):
        store.put(tenant, policy(i + 1, updated_at=1_000 + i))
    return tenants


async def test_each_decision_and_a_second_run_writes_nothing(rtdb: FakeStore, supabase: FakeStore) -> None:
    rtdb.put("create", policy(3))
    rtdb.put("update", policy(4, operational="cloud", updated_at=2_000))
    supabase.put("update", policy(2, updated_at=1_500))
    rtdb.put("equal", policy(5))
    supabase.put("equal", policy(5))
    supabase.put("only-target", policy(1))
    rtdb.listed_only.add("listed")
    result = await run(backends(rtdb, supabase))
    assert dict(result.counts) == {
        Decision.create: 1,
        Decision.update: 1,
        Decision.equal: 1,
        Decision.target_only: 1,
        Decision.nothing: 1,
    }
    assert result.written == 2
    assert result.clean
    assert result.tenants == 5
    assert supabase.docs["create"] == rtdb.docs["create"]
    assert supabase.docs["update"] == rtdb.docs["update"]  # version, updated_at, updated_by kept
    assert supabase.docs["only-target"] == policy(1)
    assert not checkpoint_exists()

    again = await run(backends(rtdb, supabase))
    assert again.written == 0
    assert again.counts[Decision.equal] == 3
    assert supabase.writes == ["create", "update"]


async def test_the_reverse_direction_copies_supabase_to_rtdb(rtdb: FakeStore, supabase: FakeStore) -> None:
    supabase.put("acme", policy(7))
    result = await run(backends(rtdb, supabase), "supabase", "rtdb")
    assert result.counts[Decision.create] == 1
    assert rtdb.docs["acme"] == policy(7)


async def test_a_newer_target_is_reported_and_kept_unless_forced(
    rtdb: FakeStore, supabase: FakeStore
) -> None:
    rtdb.put("acme", policy(2, updated_at=1_000))
    supabase.put("acme", policy(3, operational="cloud", updated_at=2_000, by="u2"))
    result = await run(backends(rtdb, supabase))
    assert [(s.tenant, s.decision) for s in result.skipped] == [("acme", Decision.target_newer)]
    assert "updated_at 2000 > 1000" in result.skipped[0].reason
    assert not result.clean
    assert supabase.docs["acme"].version == 3
    assert supabase.writes == []

    forced = await run(backends(rtdb, supabase), force=True)
    assert forced.counts[Decision.overwrite] == 1
    assert forced.clean
    assert supabase.docs["acme"] == rtdb.docs["acme"]


async def test_invalid_documents_are_skipped_with_their_reason(rtdb: FakeStore, supabase: FakeStore) -> None:
    rtdb.put("bad-source", InvalidStoredPolicy("operational: 'sideways' is not local or cloud", version=2))
    rtdb.put("bad-target", policy(2))
    supabase.put("bad-target", InvalidStoredPolicy("unknown key 'colour'", version=4))
    rtdb.put("bad-nover", policy(2))
    supabase.put("bad-nover", InvalidStoredPolicy("version: 'x' is not an integer"))
    result = await run(backends(rtdb, supabase))
    reasons = {skip.tenant: (skip.decision, skip.reason) for skip in result.skipped}
    assert reasons["bad-source"] == (
        Decision.source_invalid,
        "RTDB document invalid: operational: 'sideways' is not local or cloud",
    )
    assert reasons["bad-target"][0] == Decision.target_invalid
    assert "--force" in reasons["bad-target"][1]
    assert supabase.writes == []

    forced = await run(backends(rtdb, supabase), force=True)
    assert supabase.docs["bad-target"] == policy(2)
    assert {s.tenant for s in forced.skipped} == {"bad-source", "bad-nover"}
    assert "cannot be overwritten conditionally" in next(
        s.reason for s in forced.skipped if s.tenant == "bad-nover"
    )


async def test_a_tenant_changed_between_read_and_write_is_skipped(
    rtdb: FakeStore, supabase: FakeStore
) -> None:
    rtdb.put("acme", policy(2))
    rtdb.put("beta", policy(2))

    def meanwhile(tenant: str) -> None:
        if tenant == "acme" and "acme" not in supabase.docs:
            supabase.docs["acme"] = policy(1, by="api")  # an API write lands first

    supabase.before_write = meanwhile
    result = await run(backends(rtdb, supabase))
    assert [(s.tenant, s.decision) for s in result.skipped] == [("acme", Decision.conflict)]
    assert "changed during the backfill (now at version 1)" in result.skipped[0].reason
    assert supabase.docs["acme"] == policy(1, by="api")
    assert supabase.docs["beta"] == policy(2)


async def test_a_dry_run_decides_the_same_and_writes_nothing(rtdb: FakeStore, supabase: FakeStore) -> None:
    seed(rtdb, 5)
    supabase.put("t00000", policy(9, updated_at=9_999))
    dry = await run(backends(rtdb, supabase), dry_run=True)
    assert supabase.writes == []
    assert not checkpoint_exists()
    assert dry.written == 4
    assert dry.counts[Decision.target_newer] == 1
    real = await run(backends(rtdb, supabase))
    assert dict(real.counts) == dict(dry.counts)


async def test_a_stop_request_ends_after_the_batch_in_flight_and_the_next_run_resumes(
    rtdb: FakeStore, supabase: FakeStore
) -> None:
    tenants = seed(rtdb, 9)
    stop = asyncio.Event()
    supabase.before_write = lambda tenant: stop.set() if tenant == "t00003" else None
    first = await run(backends(rtdb, supabase), stop=stop)
    assert first.interrupted
    assert supabase.writes == tenants[:4]
    saved = checkpoint.load(CHECKPOINT)
    assert saved is not None
    assert saved.last_tenant == "t00003"
    assert saved.counts == {"create": 4}

    supabase.before_write = None
    second = await run(backends(rtdb, supabase))
    assert second.resumed_after == "t00003"
    assert any(
        "resuming after tenant 't00003' (4 of 9 tenants done, checkpoint cp.json written" in n
        for n in second.notes
    )
    assert not second.interrupted
    assert second.counts[Decision.create] == 9
    assert supabase.writes == tenants  # each tenant written once
    assert not checkpoint_exists()


async def test_a_backend_failure_keeps_the_checkpoint_and_a_rerun_converges(
    rtdb: FakeStore, supabase: FakeStore
) -> None:
    tenants = seed(rtdb, 8)

    def fail(tenant: str) -> None:
        if tenant == "t00005":
            raise StoreQueryFailed(
                "supabase", "Failed to write storage policy to Supabase", details={"reason": "x"}
            )

    supabase.before_write = fail
    with pytest.raises(StoreQueryFailed):
        await run(backends(rtdb, supabase))
    saved = checkpoint.load(CHECKPOINT)
    assert saved is not None
    assert saved.last_tenant == "t00003"
    assert "t00004" in supabase.writes  # the failed batch's other write finished

    supabase.before_write = None
    again = await run(backends(rtdb, supabase))
    assert again.counts[Decision.create] == 7
    assert again.counts[Decision.equal] == 1
    assert sorted(supabase.docs) == tenants
    assert again.clean


async def test_a_checkpoint_of_another_run_or_restart_starts_from_the_beginning(
    rtdb: FakeStore, supabase: FakeStore
) -> None:
    seed(rtdb, 4)
    key = checkpoint.run_key("supabase", "rtdb", force=False, tenants=())
    checkpoint.save(CHECKPOINT, checkpoint.Checkpoint(key=key, last_tenant="t00001", counts={"create": 2}))
    other = await run(backends(rtdb, supabase))
    assert other.resumed_after is None
    assert other.written == 4
    assert any("another run" in note for note in other.notes)

    own = checkpoint.run_key("rtdb", "supabase", force=False, tenants=())
    checkpoint.save(CHECKPOINT, checkpoint.Checkpoint(key=own, last_tenant="t00001", counts={"create": 2}))
    restarted = await run(backends(rtdb, supabase), restart=True)
    assert restarted.resumed_after is None
    assert restarted.counts[Decision.equal] == 4


async def test_a_checkpoint_of_another_deployment_is_not_resumed(
    rtdb: FakeStore, supabase: FakeStore
) -> None:
    seed(rtdb, 4)
    elsewhere = checkpoint.run_key("rtdb", "supabase", force=False, tenants=(), deployment="staging")
    saved = checkpoint.Checkpoint(key=elsewhere, last_tenant="t00003", counts={"create": 3})
    checkpoint.save(CHECKPOINT, saved)
    here = await run(backends(rtdb, supabase), deployment="production")
    assert here.resumed_after is None
    assert here.written == 4
    assert any("another run" in note for note in here.notes)


def test_the_deployment_is_where_the_backends_are_never_a_password() -> None:
    def settings(dsn: str, rtdb: str = "https://prod.firebaseio.com") -> ApiSettings:
        return ApiSettings(_env_file=None, supabase_db_url=dsn, firebase_database_url=rtdb)  # type: ignore[call-arg]

    production = deployment_of(settings("postgresql://postgres:one@db.example:5432/postgres"))
    assert deployment_of(settings("postgresql://postgres:two@db.example:5432/postgres")) == production
    assert deployment_of(settings("postgresql://postgres:one@other.example:5432/postgres")) != production
    assert deployment_of(settings("postgresql://postgres:one@db.example:5432/staging")) != production
    other_rtdb = settings(
        "postgresql://postgres:one@db.example:5432/postgres", "https://staging.firebaseio.com"
    )
    assert deployment_of(other_rtdb) != production
    assert "one" not in production


async def test_tenant_selection_limits_the_run(rtdb: FakeStore, supabase: FakeStore) -> None:
    seed(rtdb, 6)
    result = await run(backends(rtdb, supabase), tenants=("t00002", "t00004", "absent"))
    assert supabase.writes == ["t00002", "t00004"]
    assert result.counts[Decision.nothing] == 1


async def test_batches_read_each_side_once_per_batch(rtdb: FakeStore, supabase: FakeStore) -> None:
    seed(rtdb, 10_000)
    result = await run(backends(rtdb, supabase), batch_size=500, concurrency=32)
    assert result.written == 10_000
    assert rtdb.reads == 20
    assert supabase.reads == 20


# The legacy node


async def test_the_legacy_node_is_reported_without_the_flag(rtdb: FakeStore, supabase: FakeStore) -> None:
    rtdb.legacy_node = policy(1)
    result = await run(backends(rtdb, supabase))
    assert result.legacy is not None
    assert result.legacy.action == LegacyAction.present
    assert (
        result.legacy.message
        == "legacy settings/storage_policy present; --adopt-legacy moves it to tenant 'default'"
    )
    assert rtdb.legacy_node is not None
    assert result.clean


async def test_adoption_moves_the_node_into_the_default_tenant_and_on_in_the_same_run(
    rtdb: FakeStore, supabase: FakeStore
) -> None:
    rtdb.legacy_node = policy(2, operational="cloud", updated_at=5_000, by="legacy")
    result = await run(backends(rtdb, supabase), adopt_legacy=True)
    assert result.legacy is not None
    assert result.legacy.action == LegacyAction.adopted
    assert rtdb.legacy_node is None
    assert rtdb.docs["default"] == policy(2, operational="cloud", updated_at=5_000, by="legacy")
    assert supabase.docs["default"] == rtdb.docs["default"]
    assert result.counts[Decision.create] == 1


async def test_adoption_over_an_older_policy_raises_the_version(rtdb: FakeStore, supabase: FakeStore) -> None:
    rtdb.put("default", policy(7, updated_at=1_000))
    rtdb.legacy_node = policy(2, operational="cloud", updated_at=5_000)
    result = await run(backends(rtdb, supabase), "rtdb", "supabase", adopt_legacy=True)
    assert result.legacy is not None
    assert result.legacy.action == LegacyAction.adopted
    adopted = rtdb.docs["default"]
    assert isinstance(adopted, type(policy()))
    assert adopted.version == 8
    assert adopted.operational == "cloud"


async def test_a_newer_default_tenant_keeps_its_policy_unless_forced(
    rtdb: FakeStore, supabase: FakeStore
) -> None:
    rtdb.put("default", policy(3, updated_at=9_000))
    rtdb.legacy_node = policy(1, operational="cloud", updated_at=1_000)
    result = await run(backends(rtdb, supabase), adopt_legacy=True)
    assert result.legacy is not None
    assert result.legacy.action == LegacyAction.tenant_newer
    assert result.legacy.action in NOT_ADOPTED
    assert not result.clean
    assert rtdb.legacy_node is not None
    assert rtdb.docs["default"] == policy(3, updated_at=9_000)

    forced = await run(backends(rtdb, supabase), adopt_legacy=True, force=True)
    assert forced.legacy is not None
    assert forced.legacy.action == LegacyAction.adopted
    assert rtdb.legacy_node is None
    assert rtdb.docs["default"].version == 4


async def test_an_invalid_node_is_not_adopted_and_a_dry_run_adopts_nothing(
    rtdb: FakeStore, supabase: FakeStore
) -> None:
    rtdb.legacy_node = InvalidStoredPolicy("operational: 7 is not a string", version=1)
    invalid = await run(backends(rtdb, supabase), adopt_legacy=True)
    assert invalid.legacy is not None
    assert invalid.legacy.action == LegacyAction.invalid
    assert not invalid.clean

    rtdb.legacy_node = policy(1)
    dry = await run(backends(rtdb, supabase), adopt_legacy=True, dry_run=True)
    assert dry.legacy is not None
    assert dry.legacy.action == LegacyAction.would_adopt
    assert rtdb.legacy_node == policy(1)
    assert "default" not in rtdb.docs


async def test_an_adoption_whose_removal_was_lost_only_removes_the_node(
    rtdb: FakeStore, supabase: FakeStore
) -> None:
    rtdb.legacy_node = policy(1)
    rtdb.put("default", policy(1))
    result = await run(backends(rtdb, supabase), adopt_legacy=True)
    assert result.legacy is not None
    assert result.legacy.action == LegacyAction.adopted
    assert "already in tenant 'default'" in result.legacy.message
    assert rtdb.legacy_node is None
    assert rtdb.writes == []


async def test_a_node_changed_during_adoption_is_a_conflict(rtdb: FakeStore, supabase: FakeStore) -> None:
    rtdb.legacy_node = policy(1)

    def meanwhile(tenant: str) -> None:
        rtdb.docs.setdefault(tenant, policy(1, by="api"))

    rtdb.before_write = meanwhile
    result = await run(backends(rtdb, supabase), adopt_legacy=True)
    assert result.legacy is not None
    assert result.legacy.action == LegacyAction.conflict
    assert not result.clean
    assert rtdb.legacy_node == policy(1)
