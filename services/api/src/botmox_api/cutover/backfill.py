"""The copy engine: ``backfill --from X --to Y``, a batch at a time, writes bounded by
``--concurrency``, resumable from a checkpoint (``checkpoint.py``), stoppable between batches.

Per batch: both sides read (``survey.ReadAhead``: the next batch is read while this one is
written), one ``decide`` per tenant, the copies written concurrently, each one conditional store
call (``write_stored`` with the target's version as read), so nothing is ever half-written; a
refused write is a ``conflict`` and the tenant is skipped. Then the figures are added and the
checkpoint moves past the batch. A backend failure lets the batch's writes in flight finish, leaves
the checkpoint at the last completed batch and raises the ``StoreError``; a stop request (Ctrl-C,
SIGTERM) is honoured between batches.
"""

from __future__ import annotations

import asyncio
import bisect
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from botmox_api.cutover import checkpoint, legacy
from botmox_api.cutover.decisions import SKIPS, WRITES, Decision, Step, conflicted, decide
from botmox_api.cutover.progress import ProgressReport
from botmox_api.cutover.survey import Backends, Pair, ReadAhead, batches, tenant_ids
from botmox_api.model import DataBackend, VersionConflict

_DECISION_NAMES = frozenset(str(decision) for decision in Decision)


@dataclass(frozen=True, slots=True)
class BackfillOptions:
    source: DataBackend
    target: DataBackend
    tenants: Sequence[str] = ()
    dry_run: bool = False
    force: bool = False
    adopt_legacy: bool = False
    default_tenant: str = "default"
    batch_size: int = 500
    concurrency: int = 32
    checkpoint_path: Path | None = None
    """``None``: no checkpoint read or written. A dry run never uses one."""
    restart: bool = False
    deployment: str = ""
    """Where the backends are (``backends.deployment_of``): part of the checkpoint's key."""


@dataclass(frozen=True, slots=True)
class Skip:
    tenant: str
    decision: Decision
    reason: str


@dataclass(slots=True)
class BackfillResult:
    options: BackfillOptions
    tenants: int = 0
    counts: Counter[Decision] = field(default_factory=Counter)
    skipped: list[Skip] = field(default_factory=list)
    legacy: legacy.LegacyOutcome | None = None
    resumed_after: str | None = None
    notes: list[str] = field(default_factory=list)
    interrupted: bool = False
    seconds: float = 0.0

    @property
    def written(self) -> int:
        return sum(self.counts[decision] for decision in WRITES)

    @property
    def clean(self) -> bool:
        """Nothing skipped (a legacy node that was to be adopted and was not counts as skipped)."""
        legacy_left = self.legacy is not None and self.legacy.action in legacy.NOT_ADOPTED
        return not self.skipped and not legacy_left


def _progress_figures(result: BackfillResult) -> dict[str, int]:
    return {
        ("to write" if result.options.dry_run else "written"): result.written,
        "skipped": len(result.skipped),
    }


async def _write(backends: Backends, options: BackfillOptions, step: Step, turns: asyncio.Semaphore) -> Step:
    assert step.policy is not None
    async with turns:
        try:
            await backends.store(options.target).write_stored(
                step.tenant, step.policy, expected_version=step.expected_version
            )
        except VersionConflict as conflict:
            return conflicted(step, conflict.current_version)
    return step


async def _batch(
    backends: Backends, options: BackfillOptions, pairs: Sequence[Pair], turns: asyncio.Semaphore
) -> list[Step]:
    steps = [
        decide(
            pair.tenant,
            pair.side(options.source),
            pair.side(options.target),
            source_backend=options.source,
            target_backend=options.target,
            force=options.force,
        )
        for pair in pairs
    ]
    if options.dry_run:
        return steps
    writes = [i for i, step in enumerate(steps) if step.decision in WRITES]
    # Every write runs to its end (return_exceptions) before a failure is raised: none is left in
    # flight, and the checkpoint stays before this batch, which a resumed run does again.
    outcomes = await asyncio.gather(
        *(_write(backends, options, steps[i], turns) for i in writes), return_exceptions=True
    )
    for i, outcome in zip(writes, outcomes, strict=True):
        if isinstance(outcome, BaseException):
            raise outcome
        steps[i] = outcome
    return steps


def _resume(options: BackfillOptions, result: BackfillResult, key: str) -> checkpoint.Checkpoint | None:
    path = options.checkpoint_path
    if path is None or options.dry_run:
        return None
    saved = checkpoint.load(path)
    if saved is None:
        return None
    if options.restart:
        result.notes.append(f"--restart: ignoring the checkpoint {path}")
        return None
    if saved.key != key:
        result.notes.append(f"checkpoint {path} is of another run ({saved.key}); starting from the beginning")
        return None
    return saved


class Backfill:
    """One run. ``result`` holds the figures so far, so a run stopped by a failure or abandoned by a
    second Ctrl-C can still report what it did."""

    def __init__(self, backends: Backends, options: BackfillOptions) -> None:
        self._backends = backends
        self._options = options
        self.result = BackfillResult(options)

    async def run(self, progress: ProgressReport, stop: asyncio.Event) -> BackfillResult:
        """Copy ``options.source`` to ``options.target``; raises the ``StoreError`` of a failed
        backend. ``stop`` set: the run ends after the batch in flight (``result.interrupted``)."""
        started = time.monotonic()
        try:
            return await self._run(progress, stop)
        except asyncio.CancelledError:
            self.result.interrupted = True
            raise
        finally:
            self.result.seconds = time.monotonic() - started

    async def _run(self, progress: ProgressReport, stop: asyncio.Event) -> BackfillResult:
        backends, options, result = self._backends, self._options, self.result
        key = checkpoint.run_key(
            options.source,
            options.target,
            force=options.force,
            tenants=options.tenants,
            deployment=options.deployment,
        )
        if backends.legacy is not None:
            if options.adopt_legacy:
                result.legacy = await legacy.adopt(
                    backends.legacy,
                    backends.rtdb,
                    options.default_tenant,
                    force=options.force,
                    dry_run=options.dry_run,
                )
            else:
                result.legacy = await legacy.inspect(backends.legacy, options.default_tenant)
        ids = await tenant_ids(
            backends,
            selected=options.tenants,
            batch_size=options.batch_size,
            sides=(options.source, options.target),
        )
        result.tenants = len(ids)
        start = 0
        saved = _resume(options, result, key)
        if saved is not None:
            start = bisect.bisect_right(ids, saved.last_tenant)
            result.resumed_after = saved.last_tenant
            result.counts.update(
                {Decision(name): n for name, n in saved.counts.items() if name in _DECISION_NAMES}
            )
            result.skipped.extend(
                Skip(item["tenant"], Decision(item["decision"]), item["reason"]) for item in saved.skipped
            )
            result.notes.append(
                f"resuming after tenant {saved.last_tenant!r} ({start} of {len(ids)} tenants done, "
                f"checkpoint {options.checkpoint_path} written {checkpoint.age(saved)} ago; "
                "--restart walks every tenant)"
            )
        keep_checkpoint = options.checkpoint_path is not None and not options.dry_run
        turns = asyncio.Semaphore(options.concurrency)
        chunks = list(batches(ids[start:], options.batch_size))
        reads = ReadAhead(backends, chunks)
        progress.start(len(ids), resumed_at=start)
        try:
            done = start
            for batch in chunks:
                if stop.is_set():
                    result.interrupted = True
                    return result
                for step in await _batch(backends, options, await reads.next(), turns):
                    result.counts[step.decision] += 1
                    if step.decision in SKIPS:
                        result.skipped.append(Skip(step.tenant, step.decision, step.reason))
                done += len(batch)
                if keep_checkpoint:
                    assert options.checkpoint_path is not None
                    checkpoint.save(options.checkpoint_path, _checkpoint(key, batch[-1], result))
                progress.update(done, _progress_figures(result))
        finally:
            await reads.aclose()
            progress.stop()
        if keep_checkpoint:
            assert options.checkpoint_path is not None
            checkpoint.remove(options.checkpoint_path)
        return result


def _checkpoint(key: str, last_tenant: str, result: BackfillResult) -> checkpoint.Checkpoint:
    return checkpoint.Checkpoint(
        key=key,
        last_tenant=last_tenant,
        counts={str(decision): n for decision, n in result.counts.items()},
        skipped=[
            {"tenant": skip.tenant, "decision": str(skip.decision), "reason": skip.reason}
            for skip in result.skipped
        ],
    )
