"""What ``make agents-scale`` measured, and how it is printed and judged (pure functions, tested alone).

The figures come from the database and the API process, not from the tool's own clock where it can
be avoided: a command's round trip is ``finished_at - created_at`` of its ``agent_commands`` row (the
enqueue's and the stored result's transaction times), a reconnect's arrival is the agent row's
``connected_at`` after the restart; memory is the API process's resident set (``VmRSS``).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Final

HISTOGRAM_BAR_CHARS: Final = 50
KIB: Final = 1024


def percentile(values: Sequence[float], fraction: float) -> float:
    """The nearest-rank percentile (``fraction`` in [0, 1]) of ``values``; NaN when there are none."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(1, math.ceil(fraction * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


def histogram(offsets_s: Sequence[float], bin_s: float = 1.0) -> list[tuple[float, int]]:
    """(bin start, count) for every bin from 0 to the last arrival, empty bins included."""
    if not offsets_s:
        return []
    counts = Counter(max(0, int(offset // bin_s)) for offset in offsets_s)
    return [(index * bin_s, counts.get(index, 0)) for index in range(max(counts) + 1)]


@dataclass(frozen=True, slots=True)
class Reconnects:
    """Arrivals after the API restarted, in seconds after the restart began (the old API's stop)."""

    agents: int
    offsets_s: tuple[float, ...]
    api_ready_after_s: float

    @property
    def all_back(self) -> bool:
        return len(self.offsets_s) == self.agents

    @property
    def peak_per_second(self) -> int:
        return max((count for _start, count in histogram(self.offsets_s)), default=0)


@dataclass(frozen=True, slots=True)
class Figures:
    agents: int
    fleet_processes: int
    connect_s: float
    commands: int
    succeeded: int
    command_window_s: float
    round_trips_s: tuple[float, ...]
    agents_commanded: int
    duplicate_runs: int
    rss_before_kib: int
    rss_connected_kib: int
    heartbeats: int
    heartbeat_window_s: float
    reconnects: Reconnects | None
    load_average: str = ""
    notes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def commands_per_s(self) -> float:
        return self.succeeded / self.command_window_s if self.command_window_s > 0 else math.nan

    @property
    def kib_per_agent(self) -> float:
        return (self.rss_connected_kib - self.rss_before_kib) / self.agents if self.agents else math.nan


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms"


def table(figures: Figures) -> list[str]:
    """The closing note, one figure a line; the reconnect histogram last."""
    trips = figures.round_trips_s
    lines = [
        f"agents                 {figures.agents:,} simulated, in {figures.fleet_processes} processes,"
        f" all connected {figures.connect_s:.1f} s after the fleet started",
        f"commands               {figures.succeeded:,} of {figures.commands:,} succeeded in"
        f" {figures.command_window_s:.1f} s: {figures.commands_per_s:.1f} commands/s"
        f" ({figures.agents_commanded:,} agents commanded, {figures.duplicate_runs} run twice)",
        f"round trip             p50 {_ms(percentile(trips, 0.5))}, p99 {_ms(percentile(trips, 0.99))},"
        f" max {_ms(max(trips, default=math.nan))} (enqueue to result stored, database clock)",
        f"API memory             RSS {figures.rss_before_kib / KIB:.1f} MiB before the fleet,"
        f" {figures.rss_connected_kib / KIB:.1f} MiB with {figures.agents:,} connected:"
        f" {figures.kib_per_agent:.1f} KiB per connected agent",
        f"heartbeats             {figures.heartbeats:,} in {figures.heartbeat_window_s:.0f} s"
        f" ({figures.heartbeats / figures.heartbeat_window_s if figures.heartbeat_window_s else 0:.1f}/s)",
    ]
    reconnects = figures.reconnects
    if reconnects is not None:
        offsets = reconnects.offsets_s
        lines.append(
            f"reconnect              {len(offsets):,} of {reconnects.agents:,} back; API ready"
            f" {reconnects.api_ready_after_s:.1f} s after its restart began; arrivals p10"
            f" {percentile(offsets, 0.1):.1f} s, p50 {percentile(offsets, 0.5):.1f} s, p90"
            f" {percentile(offsets, 0.9):.1f} s, last {max(offsets, default=math.nan):.1f} s;"
            f" peak {reconnects.peak_per_second} in one second"
        )
        lines += histogram_lines(offsets)
    lines += [f"note                   {note}" for note in figures.notes]
    return lines


def histogram_lines(offsets_s: Sequence[float]) -> list[str]:
    bins = histogram(offsets_s)
    peak = max((count for _start, count in bins), default=0)
    return [
        f"  {start:5.0f}-{start + 1:<3.0f}s {count:6d} {'#' * math.ceil(HISTOGRAM_BAR_CHARS * count / peak)}"
        if peak
        else f"  {start:5.0f}-{start + 1:<3.0f}s {count:6d}"
        for start, count in bins
    ]


def verdict(figures: Figures) -> list[str]:
    """What went wrong (correctness only: the figures themselves are judged by a person)."""
    problems = []
    if figures.succeeded != figures.commands:
        problems.append(f"{figures.commands - figures.succeeded} commands did not succeed")
    if figures.agents_commanded != figures.agents:
        problems.append(f"only {figures.agents_commanded} of {figures.agents} agents received a command")
    if figures.duplicate_runs:
        problems.append(f"{figures.duplicate_runs} commands ran more than once on an agent")
    if figures.reconnects is not None and not figures.reconnects.all_back:
        missing = figures.reconnects.agents - len(figures.reconnects.offsets_s)
        problems.append(f"{missing} agents did not reconnect after the API restarted")
    return problems
