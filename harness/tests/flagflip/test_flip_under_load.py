"""A flip under load: a bounded stream of reads and writes keeps running while the API restarts.

The procedure is the one ops follow (docs/runbooks/storage-policy-cutover.md): ``backfill`` while the
API serves, ``verify`` (drift from the live writes is expected there), then ``flip --backend supabase
--backfill``, which runs the catch-up backfill while the API is down, so every write the old mode
acknowledged, up to its last moment, is in the new backend before the new mode answers a request.
Then the stream stops, ``verify`` shows only drift the new mode wrote, and ``backfill --from supabase
--to rtdb`` brings RTDB in step again for a roll back (``verify`` clean).

Asserted: every tenant reads its last acknowledged policy, document and ETag (one writer per tenant,
so that is well defined); each tenant's acknowledged versions only ever go up across the flip (no ETag
names two documents); each PATCH kept the fields the write before it set (no merge into a stale copy);
the failed requests are all of the restart (connection refused or dropped while it ran; no 5xx, no
429), and are printed by kind (``pytest -s`` shows them).
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable

import pytest
from operator_commands import Operator
from policy_stream import BODIES, REQUEST_TIMEOUT_S, PolicyStream, StreamReport, Write
from served_policy import served, written

from harness.fixtures.cli_stack import StackUnderTest

pytestmark = pytest.mark.integration

TENANTS = 6
# Bounds of the stream: it ends by itself after these, whatever happens to the API.
MAX_WRITES_PER_TENANT = 400
MAX_SECONDS = 60.0
# Writes per tenant to see acknowledged in a phase before moving on.
WRITES_PER_PHASE = 5
PHASE_TIMEOUT_S = 30.0
RESTART_FAILURES = {"connection refused", "connection dropped"}


def _expected_fields(previous: Write, patch: Write) -> dict[str, object]:
    """What a PATCH answer must hold: the previous document with the PATCH's fields merged in."""
    assert previous.document is not None
    expected = {"operational": previous.document["operational"], "sync": dict(previous.document["sync"])}
    if "operational" in patch.body:
        expected["operational"] = patch.body["operational"]
    if "sync" in patch.body:
        expected["sync"] = {"enabled": patch.body["sync"]["enabled"]}
    return expected


def _check_each_tenants_history(report: StreamReport, tenants: list[str]) -> None:
    for tenant in tenants:
        acknowledged = [write for write in report.acknowledged if write.tenant == tenant]
        versions = [int((write.etag or "").strip('"')) for write in acknowledged]
        assert versions == sorted(set(versions)), f"{tenant}: versions went back or repeated: {versions}"
        for previous, current in itertools.pairwise(acknowledged):
            lost_in_between = [w for w in report.unknown if previous.sequence < w.sequence < current.sequence]
            if current.method != "PATCH" or lost_in_between:
                continue
            assert current.document is not None
            got = {"operational": current.document["operational"], "sync": current.document["sync"]}
            assert got == _expected_fields(previous, current), (
                f"{tenant}: PATCH #{current.sequence} {current.body} was merged into something other than"
                f" the write acknowledged before it (#{previous.sequence}: {previous.document})"
            )


def test_every_acknowledged_write_survives_a_flip_under_load(
    stack: StackUnderTest, operator: Operator, tenants: Callable[[int], list[str]]
) -> None:
    names = tenants(TENANTS)
    for tenant in names:
        written(stack, tenant, *BODIES[0])
    stream = PolicyStream(
        stack.printed.api_url,
        {tenant: stack.token_for(tenant) for tenant in names},
        max_writes=MAX_WRITES_PER_TENANT,
        duration_s=MAX_SECONDS,
    )
    stream.start()
    started = time.monotonic()
    try:
        stream.wait_for_acknowledged(WRITES_PER_PHASE, PHASE_TIMEOUT_S)
        bulk = operator.cutover("backfill", "--from", "rtdb", "--to", "supabase", "--json")
        # Live writes may race a copy: such a tenant is skipped as a conflict (exit 1), caught up later.
        assert bulk.exit_code in (0, 1), str(bulk)
        live_drift = operator.cutover("verify", "--json")
        assert live_drift.exit_code in (0, 1), str(live_drift)
        stream.wait_for_acknowledged(WRITES_PER_PHASE, PHASE_TIMEOUT_S)

        flip_began = time.monotonic() - started
        operator.flip("supabase", "--backfill")
        flip_ended = time.monotonic() - started
        stream.wait_for_acknowledged(WRITES_PER_PHASE, PHASE_TIMEOUT_S)
    finally:
        stream.stop()
        report = stream.join()
    print(f"\n{report.summary()}")
    print(f"flip --backfill ran from t={flip_began:.2f} s to t={flip_ended:.2f} s of the stream")
    print(
        f"live backfill: exit {bulk.exit_code}, {bulk.document.get('written')} written, "
        f"{len(bulk.document.get('skipped', []))} skipped; live verify: "
        f"{len(live_drift.document.get('differences', []))} differences"
    )

    # Every acknowledged write is readable: each tenant reads its last one, document and ETag.
    for tenant in names:
        last = report.last_acknowledged(tenant)
        assert last is not None, f"{tenant}: no write acknowledged"
        now = served(stack, tenant)
        later_unknown = report.unknown_after(tenant, last.sequence)
        if later_unknown and (now.document, now.etag) != (last.document, last.etag):
            # A write whose answer was lost may have landed after the last acknowledged one.
            assert now.version > int((last.etag or "").strip('"')), (tenant, now, last, later_unknown)
            continue
        assert (now.document, now.etag) == (last.document, last.etag), tenant
        assert stack.policy_row(tenant) is not None
    _check_each_tenants_history(report, names)

    # The failures are the restart's: refused or dropped connections while `flip` ran, nothing else.
    kinds = {kind.split(": ", 1)[1] for kind in report.failures}
    assert kinds <= RESTART_FAILURES, report.summary()
    for kind, (first, last) in report.failure_window.items():
        assert flip_began <= first, (kind, first, report.summary())
        assert last <= flip_ended + REQUEST_TIMEOUT_S, (kind, last, report.summary())
    assert report.reads_ok > 0
    assert len(report.acknowledged) >= TENANTS * 3 * WRITES_PER_PHASE

    # After the flip only the new mode wrote: verify shows that drift (Supabase ahead), then a backfill
    # the other way brings RTDB in step for a roll back.
    drift = operator.cutover_json("verify", exit_code=1)
    assert {difference["tenant"] for difference in drift["differences"]} <= set(names), drift
    back = operator.cutover_json("backfill", "--from", "supabase", "--to", "rtdb")
    assert back["skipped"] == [], back
    assert operator.cutover_json("verify")["match"] is True
