"""Reading locust's ``*_stats.csv`` and printing the tables of ``make load``."""

from __future__ import annotations

import csv
from pathlib import Path

from loadtests.thresholds import AGGREGATED, Row


def read_stats(path: Path) -> list[Row]:
    """The endpoint rows of a ``*_stats.csv``, the ``Aggregated`` row last."""
    rows: list[Row] = []
    with path.open(newline="") as handle:
        for record in csv.DictReader(handle):
            name = record["Name"] if record["Name"] != AGGREGATED else AGGREGATED
            rows.append(
                Row(
                    name=name,
                    requests=int(record["Request Count"]),
                    failures=int(record["Failure Count"]),
                    rps=_number(record["Requests/s"]),
                    p50_ms=_number(record["50%"]),
                    p95_ms=_number(record["95%"]),
                    p99_ms=_number(record["99%"]),
                )
            )
    return rows


def read_exceptions(path: Path) -> int:
    """How many exceptions the users raised (locust's ``*_exceptions.csv``; 0 when there is none)."""
    if not path.exists():
        return 0
    with path.open(newline="") as handle:
        return sum(int(record["Count"]) for record in csv.DictReader(handle))


def _number(text: str) -> float:
    return 0.0 if text in ("", "N/A") else float(text)


def _table(header: list[str], lines: list[list[str]]) -> str:
    widths = [max(len(cell) for cell in column) for column in zip(header, *lines, strict=True)]
    out = [
        "  ".join(
            cell.ljust(w) if i == 0 else cell.rjust(w)
            for i, (cell, w) in enumerate(zip(cells, widths, strict=True))
        )
        for cells in [header, ["-" * w for w in widths], *lines]
    ]
    return "\n".join(line.rstrip() for line in out)


def mode_table(rows: list[Row], conflicts: dict[str, int] | None = None) -> str:
    """req/s, p50, p95, p99 and errors (and 412 conflicts, counted apart) per endpoint."""
    conflicts = conflicts or {}
    lines = [
        [
            row.name,
            str(row.requests),
            f"{row.rps:.1f}",
            f"{row.p50_ms:.0f}",
            f"{row.p95_ms:.0f}",
            f"{row.p99_ms:.0f}",
            f"{row.failures} ({row.error_rate:.2%})",
            str(conflicts.get(row.name, sum(conflicts.values()) if row.name == AGGREGATED else 0)),
        ]
        for row in rows
    ]
    header = ["endpoint", "requests", "req/s", "p50 ms", "p95 ms", "p99 ms", "errors", "412"]
    return _table(header, lines)


def side_by_side(by_mode: dict[str, list[Row]]) -> str:
    """One line per endpoint, each mode's req/s, p95 and p99 next to each other."""
    modes = list(by_mode)
    names: list[str] = []
    for rows in by_mode.values():
        names += [row.name for row in rows if row.name not in names and row.name != AGGREGATED]
    names.append(AGGREGATED)
    header = ["endpoint"]
    for mode in modes:
        header += [f"{mode} req/s", f"{mode} p95", f"{mode} p99", f"{mode} err"]
    lines = []
    for name in names:
        line = [name]
        for mode in modes:
            row = next((r for r in by_mode[mode] if r.name == name), None)
            line += (
                [f"{row.rps:.1f}", f"{row.p95_ms:.0f}", f"{row.p99_ms:.0f}", str(row.failures)]
                if row
                else ["-", "-", "-", "-"]
            )
        lines.append(line)
    return _table(header, lines)


def tabs_line(users: int, round_rps: float, p95_ms: float, p95_limit: float | None) -> str:
    """The frontend scenario's verdict: the tabs are held when each keeps >= 9 of its 10 rounds a
    second (``round_rps``: req/s of the round's last GET, over every tab) and p95 is within its limit."""
    per_tab = round_rps / users if users else 0.0
    holds = per_tab >= 9.0 and (p95_limit is None or p95_ms <= p95_limit)
    verdict = "holds" if holds else "does NOT hold"
    return (
        f"tabs: {users} open tabs, {per_tab:.2f} rounds/s per tab (target 10), p95 {p95_ms:.0f} ms: {verdict}"
    )
