"""``loadtests/thresholds.toml``: limits per mode and endpoint, and the check of a run against them.

A limit for an endpoint in a mode is the first one set in ``[<mode>."<endpoint>"]``,
``[<mode>]``, ``[default."<endpoint>"]``, ``[default]``. ``Aggregated`` is the whole run's row.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

LIMITS = ("error_rate", "p95_ms", "p99_ms", "min_rps")
MODES = ("default", "rtdb", "supabase")
AGGREGATED = "Aggregated"


class ThresholdsError(ValueError):
    """The thresholds file is not what this module reads."""


@dataclass(frozen=True, slots=True)
class Row:
    """One endpoint's figures from locust's ``*_stats.csv``."""

    name: str
    requests: int
    failures: int
    rps: float
    p50_ms: float
    p95_ms: float
    p99_ms: float

    @property
    def error_rate(self) -> float:
        return self.failures / self.requests if self.requests else 0.0


@dataclass(frozen=True, slots=True)
class Thresholds:
    tables: dict[str, dict[str, Any]]

    def limits(self, mode: str, endpoint: str) -> dict[str, float]:
        chosen: dict[str, float] = {}
        for table in (
            self.tables.get("default", {}),
            self.tables.get("default", {}).get(endpoint, {}),
            self.tables.get(mode, {}),
            self.tables.get(mode, {}).get(endpoint, {}),
        ):
            chosen.update({key: float(value) for key, value in table.items() if key in LIMITS})
        return chosen


def parse(text: str) -> Thresholds:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise ThresholdsError(f"thresholds: {error}") from error
    for mode, table in data.items():
        if mode not in MODES or not isinstance(table, dict):
            raise ThresholdsError(f"thresholds: unknown table [{mode}] (expected one of {', '.join(MODES)})")
        for key, value in table.items():
            if isinstance(value, dict):
                for limit, number in value.items():
                    _check_limit(f"{mode}.{key}", limit, number)
            else:
                _check_limit(mode, key, value)
    return Thresholds(data)


def _check_limit(where: str, limit: str, number: object) -> None:
    if limit not in LIMITS:
        raise ThresholdsError(
            f"thresholds: [{where}] has unknown limit {limit!r} (known: {', '.join(LIMITS)})"
        )
    if isinstance(number, bool) or not isinstance(number, int | float) or number < 0:
        raise ThresholdsError(f"thresholds: [{where}] {limit} must be a number >= 0, not {number!r}")


def read(path: Path) -> Thresholds:
    return parse(path.read_text())


def check(thresholds: Thresholds, mode: str, rows: list[Row]) -> list[str]:
    """Every missed limit of a run, as ``<mode> <endpoint>: <limit> <measured> (limit <x>)``."""
    missed: list[str] = []
    for row in rows:
        limits = thresholds.limits(mode, row.name)
        measured = {"error_rate": row.error_rate, "p95_ms": row.p95_ms, "p99_ms": row.p99_ms}
        for limit in ("error_rate", "p95_ms", "p99_ms"):
            if limit in limits and measured[limit] > limits[limit]:
                missed.append(f"{mode} {row.name}: {limit} {measured[limit]:g} > {limits[limit]:g}")
        if "min_rps" in limits and row.rps < limits["min_rps"]:
            missed.append(f"{mode} {row.name}: req/s {row.rps:.1f} < min_rps {limits['min_rps']:g}")
    return missed
