"""The figures of ``make bench``: one wrk run read from its output, the median of a set of runs, the
ratios to the floor and the closing ``ratios:`` line. Pure: no process is started here.

A figure is the median of its runs, each field on its own (req/s, p50, p99 and CPU per request are
medians of three values, not the values of the median run); errors and 412s are the totals of all
runs, so one bad run is never hidden by two good ones.
"""

from __future__ import annotations

import json
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Final

WRK_LINE_PREFIX: Final = "bench-wrk "
NOT_AVAILABLE: Final = "n/a"


class WrkOutputError(ValueError):
    """wrk's output lacks the line the Lua script prints, or the line is malformed."""


@dataclass(frozen=True, slots=True)
class WrkRun:
    """One bounded wrk run, as ``storage_policy.lua`` reports it, with the server's CPU time over it."""

    requests: int
    duration_s: float
    p50_ms: float
    p99_ms: float
    non2xx: int
    conflicts: int
    socket_errors: int
    cpu_s: float = 0.0

    @property
    def rps(self) -> float:
        return self.requests / self.duration_s if self.duration_s > 0 else 0.0

    @property
    def errors(self) -> int:
        """Answers that were not 2xx, and requests that got no answer (connect, read, write, timeout)."""
        return self.non2xx + self.socket_errors

    @property
    def cpu_us_per_request(self) -> float:
        return self.cpu_s * 1e6 / self.requests if self.requests else 0.0


def _integer(record: Mapping[str, object], key: str) -> int:
    value = record.get(key)
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise WrkOutputError(f"wrk's line has no count {key!r}: {value!r}")
    return value


def parse_wrk_output(stdout: str) -> WrkRun:
    """The run described by the ``bench-wrk {...}`` line of wrk's stdout (the last one, if several)."""
    lines = [line for line in stdout.splitlines() if line.startswith(WRK_LINE_PREFIX)]
    if not lines:
        raise WrkOutputError(f"no {WRK_LINE_PREFIX.strip()!r} line in wrk's output:\n{stdout[-2000:]}")
    try:
        record = json.loads(lines[-1][len(WRK_LINE_PREFIX) :])
    except json.JSONDecodeError as error:
        raise WrkOutputError(f"wrk's line is not JSON: {lines[-1]!r}") from error
    if not isinstance(record, dict):
        raise WrkOutputError(f"wrk's line is not an object: {lines[-1]!r}")
    socket_errors = sum(
        _integer(record, key) for key in ("connect_errors", "read_errors", "write_errors", "timeouts")
    )
    return WrkRun(
        requests=_integer(record, "requests"),
        duration_s=_integer(record, "duration_us") / 1e6,
        p50_ms=_integer(record, "p50_us") / 1e3,
        p99_ms=_integer(record, "p99_us") / 1e3,
        non2xx=_integer(record, "non2xx"),
        conflicts=_integer(record, "conflicts"),
        socket_errors=socket_errors,
    )


@dataclass(frozen=True, slots=True)
class Figure:
    """One (target, operation, connections, emulator latency) measured over several runs."""

    target: str
    operation: str
    connections: int
    runs: tuple[WrkRun, ...]
    emulator_latency_ms: int | None = None
    rps: float = field(init=False)
    p50_ms: float = field(init=False)
    p99_ms: float = field(init=False)
    cpu_us_per_request: float = field(init=False)
    errors: int = field(init=False)
    conflicts: int = field(init=False)

    def __post_init__(self) -> None:
        if not self.runs:
            raise ValueError("a figure needs at least one run")
        median = statistics.median
        object.__setattr__(self, "rps", median(run.rps for run in self.runs))
        object.__setattr__(self, "p50_ms", median(run.p50_ms for run in self.runs))
        object.__setattr__(self, "p99_ms", median(run.p99_ms for run in self.runs))
        object.__setattr__(self, "cpu_us_per_request", median(run.cpu_us_per_request for run in self.runs))
        object.__setattr__(self, "errors", sum(run.errors for run in self.runs))
        object.__setattr__(self, "conflicts", sum(run.conflicts for run in self.runs))

    @property
    def flags(self) -> str:
        """What makes the figure suspect: any error, and a 412 (the PATCHes send no If-Match)."""
        marks = []
        if self.errors:
            marks.append("ERRORS")
        if self.conflicts:
            marks.append("412!")
        return " ".join(marks)

    def to_json(self) -> dict[str, object]:
        return {
            "target": self.target,
            "operation": self.operation,
            "connections": self.connections,
            "emulator_latency_ms": self.emulator_latency_ms,
            "rps": self.rps,
            "p50_ms": self.p50_ms,
            "p99_ms": self.p99_ms,
            "cpu_us_per_request": self.cpu_us_per_request,
            "errors": self.errors,
            "conflicts": self.conflicts,
            "runs": [
                {**asdict(run), "rps": run.rps, "cpu_us_per_request": run.cpu_us_per_request}
                for run in self.runs
            ],
        }


def ratio(numerator: float | None, denominator: float | None) -> float | None:
    """``numerator / denominator``; ``None`` when either is missing or the denominator is zero."""
    if numerator is None or denominator is None or denominator == 0:
        return None
    return numerator / denominator


def mix_cpu_us(figures: Sequence[Figure]) -> float | None:
    """CPU of one request of each operation together (e.g. one GET plus one PATCH), in µs: the cost of
    an equal mix, whatever number of requests each run happened to complete."""
    return sum(figure.cpu_us_per_request for figure in figures) if figures else None


@dataclass(frozen=True, slots=True)
class Ratios:
    get: float | None
    patch: float | None
    rtdb_cpu_per_req_vs_supabase: float | None
    rtdb_get_at_40ms: float | None

    def line(self) -> str:
        """The closing line of ``make bench``; a ratio that could not be measured is ``n/a``."""
        values = asdict(self)
        shown = " ".join(f"{name}={_two_places(value)}" for name, value in values.items())
        return f"ratios: {shown}"


def _two_places(value: float | None) -> str:
    return NOT_AVAILABLE if value is None else f"{value:.2f}"
