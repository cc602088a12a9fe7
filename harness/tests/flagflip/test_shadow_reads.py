"""Shadow reads on the harness stack: a difference planted in one tenant is logged, matching tenants are not.

The API is restarted in its mode with ``flip --api-env STORAGE_POLICY_SHADOW=on`` (the stack's way to
give it a variable it does not set itself). One tenant's row is changed raw in Supabase, the backend
the API does not serve from; every tenant is read through the API. The API's log (the file ``python -m
harness logs api`` prints) must then hold a ``storage_policy_shadow_mismatch`` for that tenant alone,
and the summary the API logs when it stops must count every read compared, one mismatch, nothing
dropped, failed or left unfinished: so the matching tenants were compared and found equal.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import pytest
from operator_commands import Operator
from served_policy import served, written

from harness.fixtures.cli_stack import StackUnderTest

pytestmark = pytest.mark.integration

SHADOW = "STORAGE_POLICY_SHADOW"
MISMATCH = "storage_policy_shadow_mismatch"
SUMMARY = "storage_policy_shadow_summary"
FAILED = "storage_policy_shadow_failed"
LOG_WAIT_S = 20.0


def _events(stack: StackUnderTest, offset: int) -> list[dict[str, Any]]:
    """The API's JSON log lines written after ``offset`` (bytes), shadow-read events only."""
    with stack.paths.log_file("api").open("rb") as log:
        log.seek(offset)
        lines = log.read().decode(errors="replace").splitlines()
    events = []
    for line in lines:
        try:
            event = json.loads(line)
        except json.JSONDecodeError:
            continue  # uvicorn's own lines
        if isinstance(event, dict) and str(event.get("event", "")).startswith("storage_policy_shadow"):
            events.append(event)
    return events


def _wait_for(stack: StackUnderTest, offset: int, found: Callable[[list[dict[str, Any]]], bool]) -> None:
    deadline = time.monotonic() + LOG_WAIT_S
    while time.monotonic() < deadline:
        if found(_events(stack, offset)):
            return
        time.sleep(0.1)
    raise AssertionError(f"not in the API's log after {LOG_WAIT_S} s: {_events(stack, offset)}")


def test_shadow_reads_log_the_planted_tenant_and_nothing_for_matching_ones(
    stack: StackUnderTest, operator: Operator, tenants: Callable[[int], list[str]]
) -> None:
    names = tenants(4)
    for tenant in names:
        written(stack, tenant, "PUT", {"operational": "local", "sync": {"enabled": True}})
    operator.cutover_json("backfill", "--from", "rtdb", "--to", "supabase")
    assert operator.cutover_json("verify")["match"] is True

    offset = stack.paths.log_file("api").stat().st_size
    flipped = operator.flip("rtdb", "--api-env", f"{SHADOW}=on")
    assert f"extra variables: {SHADOW}" in flipped.stdout
    assert stack.current().extra_environment == {"api": {SHADOW: "on"}}

    planted = names[2]
    stack.sql("update public.storage_policies set operational = 'cloud' where tenant_id = %s", (planted,))
    for tenant in names:  # the planted tenant's answer is RTDB's, unchanged
        policy = served(stack, tenant)
        assert policy.document is not None
        assert policy.document["operational"] == "local"
    _wait_for(stack, offset, lambda events: any(e["event"] == MISMATCH for e in events))

    # Stopping the API (shadow reads off again) logs the final counters.
    operator.flip("rtdb", "--api-env", SHADOW)
    _wait_for(stack, offset, lambda events: any(e["event"] == SUMMARY for e in events))
    events = _events(stack, offset)
    mismatches = [event for event in events if event["event"] == MISMATCH]
    assert [event["tenant_id"] for event in mismatches] == [planted], mismatches
    assert "operational" in mismatches[0]["fields"]
    assert (mismatches[0]["primary"], mismatches[0]["shadow"]) == ("rtdb", "supabase")
    assert not [event for event in events if event["event"] == FAILED]
    summary = [event for event in events if event["event"] == SUMMARY][-1]
    counted = {key: summary.get(key) for key in ("compared", "matched", "mismatched", "dropped", "failed")}
    assert counted == {
        "compared": len(names),
        "matched": len(names) - 1,
        "mismatched": 1,
        "dropped": 0,
        "failed": 0,
    }, summary
    assert summary.get("unfinished") == 0, summary
