"""``flip --backfill``: the catch-up backfill runs while the API is down, from the first tenant.

Each case is one a catch-up could get wrong: a PATCH acknowledged by the old mode after the bulk copy
(a catch-up after the new mode serves would merge the next PATCH into the older copy and lose it), a
tenant the catch-up must skip (the flip is abandoned, the API serves in its old mode again), and a
checkpoint an earlier, interrupted run left behind (resuming from it would skip the tenants before
it, whose writes since would be lost).
"""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest
from operator_commands import Operator
from served_policy import served, written

from harness.fixtures.cli_stack import StackUnderTest

pytestmark = pytest.mark.integration


def test_flip_with_backfill_keeps_a_patch_acknowledged_just_before_it(
    stack: StackUnderTest, operator: Operator, tenants: Callable[[int], list[str]]
) -> None:
    # The write a catch-up run after the flip would lose: acknowledged by RTDB after the bulk copy,
    # then merged into by the new mode. `flip --backfill` copies it while the API is down.
    (tenant,) = tenants(1)
    written(stack, tenant, "PUT", {"operational": "local"})
    operator.cutover_json("backfill", "--from", "rtdb", "--to", "supabase")
    last_in_rtdb = written(stack, tenant, "PATCH", {"sync": {"enabled": True}})

    operator.flip("supabase", "--backfill")
    assert served(stack, tenant) == last_in_rtdb
    merged = written(stack, tenant, "PATCH", {"operational": "cloud"}, if_match=last_in_rtdb.etag)
    assert merged.document is not None
    assert (merged.document["operational"], merged.document["sync"]) == ("cloud", {"enabled": True})
    assert merged.version == last_in_rtdb.version + 1


def test_flip_with_backfill_stays_in_the_old_mode_when_the_catch_up_skips_a_tenant(
    stack: StackUnderTest, tenants: Callable[[int], list[str]]
) -> None:
    (broken,) = tenants(1)
    node = {"secrets": "local-only", "operational": "moon", "sync": {"enabled": True}, "version": 2}
    stack.rtdb_put(f"tenants/{broken}/settings/storage_policy", node)
    before = stack.current().processes["api"]

    refused = stack.cli("flip", "--backend", "supabase", "--backfill")
    assert refused.returncode == 1, refused.stdout + refused.stderr
    assert broken in refused.stdout + refused.stderr, "the catch-up names the tenant it skipped"
    assert "started again with DATA_BACKEND=rtdb" in refused.stderr
    after = stack.current()
    assert after.data_backend == "rtdb"
    assert after.processes["api"] != before
    with stack.api() as api:
        assert api.get("/api/v1/health").json()["data"]["data_backend"] == "rtdb"
    assert stack.policy_row(broken) is None


def test_flip_with_backfill_copies_every_tenant_whatever_checkpoint_is_left(
    stack: StackUnderTest, operator: Operator, tenants: Callable[[int], list[str]]
) -> None:
    (tenant,) = tenants(1)
    written(stack, tenant, "PUT", {"operational": "local"})
    operator.cutover_json("backfill", "--from", "rtdb", "--to", "supabase")
    last_in_rtdb = written(stack, tenant, "PATCH", {"sync": {"enabled": True}})
    # What an interrupted catch-up (an aborted flip) leaves: done up to a tenant after this one.
    checkpoint = stack.paths.home / "cutover" / "catch-up-rtdb-to-supabase.json"
    checkpoint.parent.mkdir(exist_ok=True)
    key = "rtdb-to-supabase;force=False;tenants=all"
    left = {"format": 1, "key": key, "last_tenant": "zzzz", "counts": {}, "skipped": []}
    checkpoint.write_text(json.dumps(left))

    flipped = operator.flip("supabase", "--backfill")
    assert "resuming" not in flipped.stdout, flipped.stdout
    assert served(stack, tenant) == last_in_rtdb
    assert not checkpoint.exists(), "a complete run removes its checkpoint"
