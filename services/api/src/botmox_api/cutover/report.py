"""What each command prints on stdout: plain text (tables, totals, every finding) or, with ``--json``,
one JSON document with the same figures (``docs/contracts/cutover-cli.md``). Exit codes too."""

from __future__ import annotations

import enum
import json
from collections.abc import Iterable, Sequence

from botmox_api.cutover.backfill import BackfillResult
from botmox_api.cutover.decisions import DECISION_TITLES, Decision
from botmox_api.cutover.legacy import LegacyOutcome
from botmox_api.cutover.plan import PlanResult
from botmox_api.cutover.survey import STATE_TITLES, State, Stored, describe
from botmox_api.cutover.verify import VerifyResult
from botmox_api.model import BACKEND_TITLES, InvalidStoredPolicy, JsonObject, JsonValue, StoreError


class Exit(enum.IntEnum):
    clean = 0
    findings = 1
    usage = 2
    backend_failed = 3
    interrupted = 130
    """Ctrl-C; a SIGTERM exits ``backend_failed`` (the run stopped early: run it again to resume)."""


def counted(count: int, noun: str) -> str:
    """``1 tenant``, ``2 tenants``: a figure with its noun, as the summaries print it."""
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


def _seconds(value: float) -> float:
    return round(value, 3)


def _legacy_json(outcome: LegacyOutcome | None) -> JsonValue:
    return None if outcome is None else {"action": str(outcome.action), "message": outcome.message}


def _legacy_lines(outcome: LegacyOutcome | None) -> list[str]:
    return [] if outcome is None else [f"legacy: {outcome.message}"]


def _table(header: Sequence[str], rows: Iterable[Sequence[str]]) -> list[str]:
    """Columns padded to their widest cell; plain text, so 10,000 rows render at once."""
    materialized = [header, *rows]
    widths = [max(len(row[i]) for row in materialized) for i in range(len(header) - 1)]
    return [
        "  ".join([*(cell.ljust(width) for cell, width in zip(row, widths, strict=False)), row[-1]]).rstrip()
        for row in materialized
    ]


# plan


def _side_json(stored: Stored) -> JsonObject:
    if stored is None:
        return {"stored": "absent", "version": None, "reason": None}
    if isinstance(stored, InvalidStoredPolicy):
        return {"stored": "invalid", "version": stored.version, "reason": stored.reason}
    return {"stored": "policy", "version": stored.version, "reason": None}


def plan_exit(_result: PlanResult) -> Exit:
    return Exit.clean


def plan_json(result: PlanResult, *, summary: bool) -> JsonObject:
    document: JsonObject = {
        "command": "plan",
        "tenants": sum(result.totals.values()),
        "totals": {str(state): result.totals[state] for state in State},
        "legacy": _legacy_json(result.legacy),
        "seconds": _seconds(result.seconds),
        "exit_code": int(plan_exit(result)),
    }
    if not summary:
        document["rows"] = [
            {
                "tenant": row.pair.tenant,
                "state": str(row.state),
                "rtdb": _side_json(row.pair.rtdb),
                "supabase": _side_json(row.pair.supabase),
                "differences": list(row.differences),
            }
            for row in result.rows
        ]
    return document


def plan_text(result: PlanResult, *, summary: bool) -> list[str]:
    lines: list[str] = []
    if not summary:
        lines += _table(
            ("tenant", "state", "rtdb", "supabase", "differences"),
            (
                (
                    row.pair.tenant,
                    STATE_TITLES[row.state],
                    describe(row.pair.rtdb),
                    describe(row.pair.supabase),
                    ", ".join(row.differences),
                )
                for row in result.rows
            ),
        )
    total = sum(result.totals.values())
    lines.append(
        f"plan: {counted(total, 'tenant')} in {result.seconds:.1f} s: "
        + ", ".join(f"{result.totals[state]} {STATE_TITLES[state]}" for state in State)
    )
    return lines + _legacy_lines(result.legacy)


# backfill


def backfill_exit(result: BackfillResult) -> Exit:
    if result.interrupted:
        return Exit.interrupted
    return Exit.clean if result.clean else Exit.findings


def backfill_json(result: BackfillResult, exit_code: Exit) -> JsonObject:
    options = result.options
    return {
        "command": "backfill",
        "from": options.source,
        "to": options.target,
        "dry_run": options.dry_run,
        "force": options.force,
        "tenants": result.tenants,
        "counts": {str(decision): result.counts[decision] for decision in Decision},
        "written": result.written,
        "skipped": [
            {"tenant": skip.tenant, "decision": str(skip.decision), "reason": skip.reason}
            for skip in result.skipped
        ],
        "legacy": _legacy_json(result.legacy),
        "resumed_after": result.resumed_after,
        "interrupted": result.interrupted,
        "checkpoint": str(options.checkpoint_path)
        if result.interrupted and options.checkpoint_path is not None and not options.dry_run
        else None,
        "notes": list(result.notes),
        "seconds": _seconds(result.seconds),
        "exit_code": int(exit_code),
    }


def backfill_text(result: BackfillResult) -> list[str]:
    options = result.options
    direction = f"{options.source} -> {options.target}"
    dry = " (dry run: nothing written)" if options.dry_run else ""
    lines = [f"note: {note}" for note in result.notes]
    lines += _legacy_lines(result.legacy)
    lines.append(f"backfill {direction}{dry}: {counted(result.tenants, 'tenant')} in {result.seconds:.1f} s")
    lines += _table(
        ("  decision", "tenants"),
        ((f"  {DECISION_TITLES[d]}", str(result.counts[d])) for d in Decision if result.counts[d]),
    )[1:]
    verb = "would write" if options.dry_run else "written"
    lines.append(f"{verb}: {result.written}; skipped: {len(result.skipped)}")
    lines += [f"  skipped tenant {skip.tenant}: {skip.reason}" for skip in result.skipped]
    if result.interrupted and options.dry_run:
        lines.append("interrupted: a dry run writes nothing; run it again")
    elif result.interrupted:
        lines.append(
            f"interrupted: the checkpoint {options.checkpoint_path} keeps what is done; run the same "
            "command again to resume (every completed write stays, nothing is half-written)"
        )
    return lines


# verify


def verify_exit(result: VerifyResult) -> Exit:
    return Exit.clean if result.match else Exit.findings


def _shown(value: JsonValue) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def verify_json(result: VerifyResult) -> JsonObject:
    return {
        "command": "verify",
        "match": result.match,
        "tenants": result.tenants,
        "different_tenants": result.different_tenants,
        "differences": [
            {"tenant": d.tenant, "field": d.field, "rtdb": d.rtdb, "supabase": d.supabase}
            for d in result.differences
        ],
        "legacy": _legacy_json(result.legacy),
        "seconds": _seconds(result.seconds),
        "exit_code": int(verify_exit(result)),
    }


def verify_text(result: VerifyResult) -> list[str]:
    lines = [
        f"tenant {d.tenant}: {d.field} rtdb={_shown(d.rtdb)} supabase={_shown(d.supabase)}"
        for d in result.differences
    ]
    differ = "differs" if result.different_tenants == 1 else "differ"
    verdict = (
        "both sides match"
        if result.match
        else f"{counted(result.different_tenants, 'tenant')} {differ}"
        f" ({counted(len(result.differences), 'difference')})"
    )
    lines.append(f"verify: {counted(result.tenants, 'tenant')} in {result.seconds:.1f} s: {verdict}")
    return lines + _legacy_lines(result.legacy)


# failures


def failure_line(error: StoreError) -> str:
    reason = error.details.get("reason") or error.details.get("missing")
    shown = f" ({reason})" if reason else ""
    return f"{BACKEND_TITLES[error.backend]} failed: {error.message}{shown}"


def failure_json(command: str, error: StoreError, exit_code: Exit) -> JsonObject:
    reason = error.details.get("reason")
    return {
        "command": command,
        "error": {
            "backend": error.backend,
            "message": error.message,
            "reason": reason if isinstance(reason, str) else None,
        },
        "exit_code": int(exit_code),
    }
