"""``plan``: what exists where, per tenant and in totals. Reads only."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

from botmox_api.cutover import legacy
from botmox_api.cutover.progress import ProgressReport
from botmox_api.cutover.survey import Backends, Pair, State, classify, walk_both_sides
from botmox_api.model import StoragePolicy, policy_differences


@dataclass(frozen=True, slots=True)
class PlanRow:
    pair: Pair
    state: State
    differences: tuple[str, ...]
    """The fields that differ when both sides hold a valid policy."""


@dataclass(slots=True)
class PlanResult:
    rows: list[PlanRow] = field(default_factory=list)
    totals: Counter[State] = field(default_factory=Counter)
    legacy: legacy.LegacyOutcome | None = None
    seconds: float = 0.0


def _row(pair: Pair) -> PlanRow:
    state = classify(pair)
    rtdb, supabase = pair.rtdb, pair.supabase
    if isinstance(rtdb, StoragePolicy) and isinstance(supabase, StoragePolicy):
        return PlanRow(pair, state, policy_differences(rtdb, supabase))
    return PlanRow(pair, state, ())


async def run_plan(
    backends: Backends,
    *,
    tenants: Sequence[str],
    batch_size: int,
    default_tenant: str,
    progress: ProgressReport,
) -> PlanResult:
    started = time.monotonic()
    result = PlanResult()
    if backends.legacy is not None:
        result.legacy = await legacy.inspect(backends.legacy, default_tenant)

    def on_batch(pairs: list[Pair]) -> None:
        for pair in pairs:
            row = _row(pair)
            result.rows.append(row)
            result.totals[row.state] += 1
        progress.update(len(result.rows), {"different": result.totals[State.different]})

    await walk_both_sides(
        backends, tenants=tenants, batch_size=batch_size, progress=progress, on_batch=on_batch
    )
    result.seconds = time.monotonic() - started
    return result
