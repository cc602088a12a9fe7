"""``plan`` (what exists where) and ``verify`` (field by field) on in-memory stores."""

from __future__ import annotations

import dataclasses

import pytest
from cutover_fakes import FakeStore, backends, policy

from botmox_api.cutover.plan import run_plan
from botmox_api.cutover.progress import LineProgress
from botmox_api.cutover.survey import State
from botmox_api.cutover.verify import FIELD_VALUES, Difference, run_verify
from botmox_api.model import POLICY_FIELDS, InvalidStoredPolicy, StoreQueryFailed


class Sink:
    def write(self, text: str) -> int:
        return len(text)

    def flush(self) -> None:
        return None


def progress() -> LineProgress:
    return LineProgress("test", Sink())  # type: ignore[arg-type]


def every_state(rtdb: FakeStore, supabase: FakeStore) -> None:
    rtdb.put("a-rtdb", policy(1))
    supabase.put("b-supabase", policy(1))
    rtdb.put("c-equal", policy(2))
    supabase.put("c-equal", policy(2))
    rtdb.put("d-different", policy(2, operational="local"))
    supabase.put("d-different", policy(2, operational="cloud"))
    rtdb.put("e-invalid", InvalidStoredPolicy("unknown key 'x'", version=1))
    supabase.put("e-invalid", policy(1))
    rtdb.listed_only.add("f-neither")


async def test_plan_classifies_every_tenant_of_both_sides(rtdb: FakeStore, supabase: FakeStore) -> None:
    every_state(rtdb, supabase)
    result = await run_plan(
        backends(rtdb, supabase), tenants=(), batch_size=2, default_tenant="default", progress=progress()
    )
    assert [(row.pair.tenant, row.state) for row in result.rows] == [
        ("a-rtdb", State.rtdb_only),
        ("b-supabase", State.supabase_only),
        ("c-equal", State.equal),
        ("d-different", State.different),
        ("e-invalid", State.invalid),
        ("f-neither", State.neither),
    ]
    assert result.rows[3].differences == ("operational",)
    assert all(result.totals[state] == 1 for state in State)
    assert rtdb.writes == []
    assert supabase.writes == []


async def test_verify_names_one_changed_field_in_one_tenant_with_both_values(
    rtdb: FakeStore, supabase: FakeStore
) -> None:
    for i in range(50):
        rtdb.put(f"t{i:03d}", policy(i + 1))
        supabase.put(f"t{i:03d}", policy(i + 1))
    supabase.put("t017", dataclasses.replace(policy(18), operational="cloud"))
    result = await run_verify(
        backends(rtdb, supabase), tenants=(), batch_size=7, default_tenant="default", progress=progress()
    )
    assert not result.match
    assert result.tenants == 50
    assert result.different_tenants == 1
    assert result.differences == [Difference("t017", "operational", "local", "cloud")]


async def test_verify_counts_a_missing_side_and_an_invalid_document_as_differences(
    rtdb: FakeStore, supabase: FakeStore
) -> None:
    every_state(rtdb, supabase)
    result = await run_verify(
        backends(rtdb, supabase), tenants=(), batch_size=100, default_tenant="default", progress=progress()
    )
    assert result.differences == [
        Difference("a-rtdb", "document", "stored (version 1)", "absent"),
        Difference("b-supabase", "document", "absent", "stored (version 1)"),
        Difference("d-different", "operational", "local", "cloud"),
        Difference("e-invalid", "document", "invalid: unknown key 'x'", "stored (version 1)"),
    ]


async def test_verify_matches_when_both_sides_are_equal(rtdb: FakeStore, supabase: FakeStore) -> None:
    rtdb.put("acme", policy(3))
    supabase.put("acme", policy(3))
    supabase.listed_only.add("empty")
    result = await run_verify(
        backends(rtdb, supabase), tenants=(), batch_size=100, default_tenant="default", progress=progress()
    )
    assert result.match
    assert result.tenants == 2


async def test_verify_shows_every_compared_field() -> None:
    assert tuple(FIELD_VALUES) == POLICY_FIELDS


async def test_a_failing_backend_fails_the_read_only_commands(rtdb: FakeStore, supabase: FakeStore) -> None:
    rtdb.put("acme", policy(3))
    supabase.fail_reads = True
    with pytest.raises(StoreQueryFailed):
        await run_plan(
            backends(rtdb, supabase),
            tenants=(),
            batch_size=100,
            default_tenant="default",
            progress=progress(),
        )
