"""Measuring a server: a warm-up, then the median of several bounded wrk runs, and the report of the
figures (table, ratios, JSON).
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from loadtests.bench import wrk
from loadtests.bench.figures import Figure, Ratios, WrkRun, mix_cpu_us, ratio
from loadtests.bench.servers import Server

FLOOR: Final = "floor"
API_SUPABASE: Final = "api-supabase"
API_RTDB: Final = "api-rtdb"
TARGETS: Final = (FLOOR, API_SUPABASE, API_RTDB)  # the table's order


@dataclass(frozen=True, slots=True)
class Options:
    seconds: int = 5
    warmup_seconds: int = 2
    runs: int = 3
    connections: int = 32
    wide_connections: int = 64
    tenants: int = 1000
    workers: int = 1
    latency_ms: int = 40
    shadow: bool = False


@dataclass(frozen=True, slots=True)
class Cores:
    """Where the server runs (``server``) and where wrk, PostgreSQL and the emulator run (``load``)."""

    server: set[int]
    load: int | None
    notes: tuple[str, ...] = ()

    @classmethod
    def choose(cls, workers: int, available: set[int] | None = None) -> Cores:
        cpus = sorted(available if available is not None else os.sched_getaffinity(0))
        if len(cpus) < 2:
            return cls(set(cpus), None, (f"only {len(cpus)} CPU available: nothing is pinned",))
        server, load = cpus[0], cpus[1]
        if workers != 1:
            note = f"{workers} API workers: the API runs unpinned on CPUs {cpus}; wrk is pinned to CPU {load}"
            return cls(set(cpus), load, (note,))
        note = f"server pinned to CPU {server}; wrk, PostgreSQL and the emulator pinned to CPU {load}"
        return cls({server}, load, (note,))

    @property
    def pinned_server(self) -> set[int]:
        """The floor is one worker: pinned whenever a load core exists."""
        return {min(self.server)} if self.load is not None else self.server


@dataclass
class Measurer:
    options: Options
    cores: Cores
    tokens_file: Path
    log_dir: Path
    figures: list[Figure] = field(default_factory=list)

    def _run(self, server: Server, operation: str, connections: int, seconds: int) -> WrkRun:
        return wrk.run(
            server.url + "/api/v1/settings/storage_policy",
            tokens_file=self.tokens_file,
            method=operation,
            connections=connections,
            seconds=seconds,
            cpu=self.cores.load,
            server_pid=server.pid,
            log_dir=self.log_dir,
        )

    def measure(
        self,
        server: Server,
        target: str,
        operation: str,
        connections: int,
        emulator_latency_ms: int | None = None,
    ) -> Figure:
        """A warm-up run (not counted), then ``runs`` measured runs; the figure is their median."""
        if self.options.warmup_seconds > 0:
            self._run(server, operation, connections, self.options.warmup_seconds)
        runs = tuple(
            self._run(server, operation, connections, self.options.seconds) for _ in range(self.options.runs)
        )
        figure = Figure(target, operation, connections, runs, emulator_latency_ms)
        self.figures.append(figure)
        print(f"bench: {_row(figure, None)}", flush=True)
        return figure

    def find(
        self, target: str, operation: str, connections: int, emulator_latency_ms: int | None = None
    ) -> Figure | None:
        for figure in self.figures:
            if (figure.target, figure.operation, figure.connections, figure.emulator_latency_ms) == (
                target,
                operation,
                connections,
                emulator_latency_ms,
            ):
                return figure
        return None


HEADER: Final = (
    f"{'target':<13} {'op':<5} {'conns':>5} {'emu ms':>6} {'req/s':>8} {'p50 ms':>7} {'p99 ms':>7} "
    f"{'errors':>6} {'CPU µs/req':>10} {'req/s/floor':>11} {'CPU/floor':>9}  flags"
)


def _row(figure: Figure, floor: Figure | None) -> str:
    latency = "-" if figure.emulator_latency_ms is None else str(figure.emulator_latency_ms)
    throughput = ratio(figure.rps, floor.rps if floor else None)
    cpu = ratio(figure.cpu_us_per_request, floor.cpu_us_per_request if floor else None)
    return (
        f"{figure.target:<13} {figure.operation:<5} {figure.connections:>5} {latency:>6} {figure.rps:>8.0f} "
        f"{figure.p50_ms:>7.1f} {figure.p99_ms:>7.1f} {figure.errors:>6} {figure.cpu_us_per_request:>10.0f} "
        f"{_times(throughput):>11} {_times(cpu):>9}  {figure.flags}"
    ).rstrip()


def _times(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def table(figures: Sequence[Figure]) -> list[str]:
    """The figures, each with its ratios to the floor's figure of the same operation and connections."""
    floors = {(f.operation, f.connections): f for f in figures if f.target == FLOOR}
    lines = [HEADER]
    for figure in sorted(
        figures, key=lambda f: TARGETS.index(f.target) if f.target in TARGETS else len(TARGETS)
    ):
        floor = None if figure.target == FLOOR else floors.get((figure.operation, figure.connections))
        lines.append(_row(figure, floor))
    return lines


def ratios(measurer: Measurer) -> Ratios:
    """The closing line's ratios (docs/performance.md says what each one is)."""
    find, options = measurer.find, measurer.options
    wide = options.wide_connections

    def rps(target: str, operation: str) -> float | None:
        figure = find(target, operation, options.connections)
        return figure.rps if figure else None

    def mix(target: str) -> float | None:
        figures = [find(target, operation, options.connections) for operation in ("GET", "PATCH")]
        present = [figure for figure in figures if figure is not None]
        return mix_cpu_us(present) if len(present) == len(figures) else None

    at_zero = find(API_RTDB, "GET", wide, 0)
    at_latency = find(API_RTDB, "GET", wide, options.latency_ms)
    return Ratios(
        get=ratio(rps(API_SUPABASE, "GET"), rps(FLOOR, "GET")),
        patch=ratio(rps(API_SUPABASE, "PATCH"), rps(FLOOR, "PATCH")),
        rtdb_cpu_per_req_vs_supabase=ratio(mix(API_RTDB), mix(API_SUPABASE)),
        rtdb_get_at_40ms=ratio(at_latency.rps if at_latency else None, at_zero.rps if at_zero else None),
    )


def write_json(
    path: Path,
    *,
    options: Options,
    cores: Cores,
    figures: Sequence[Figure],
    result: Ratios,
    notes: Sequence[str],
) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    document = {
        "options": {name: getattr(options, name) for name in options.__dataclass_fields__},
        "cpus": {"server": sorted(cores.server), "load": cores.load},
        "figures": [figure.to_json() for figure in figures],
        "ratios": {name: getattr(result, name) for name in result.__dataclass_fields__},
        "notes": list(notes),
    }
    path.write_text(json.dumps(document, indent=2) + "\n")
    return path
