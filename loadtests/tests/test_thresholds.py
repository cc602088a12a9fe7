"""thresholds.toml: parsing, lookup order and the check of a run (no load is run)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from loadtests.run import seconds_of
from loadtests.thresholds import AGGREGATED, Row, ThresholdsError, check, parse, read

LOADTESTS = Path(__file__).resolve().parent.parent
FILE = LOADTESTS / "thresholds.toml"
FILES = (FILE, LOADTESTS / "thresholds-ci.toml")


def _row(name: str = "GET storage_policy", **figures: float) -> Row:
    values: dict[str, float] = {
        "requests": 100,
        "failures": 0,
        "rps": 50.0,
        "p50_ms": 5,
        "p95_ms": 10,
        "p99_ms": 20,
    }
    values.update(figures)
    return Row(
        name=name,
        requests=int(values["requests"]),
        failures=int(values["failures"]),
        rps=values["rps"],
        p50_ms=values["p50_ms"],
        p95_ms=values["p95_ms"],
        p99_ms=values["p99_ms"],
    )


@pytest.mark.parametrize("path", FILES, ids=lambda path: path.name)
def test_the_project_files_parse(path: Path) -> None:
    thresholds = read(path)
    for mode in ("rtdb", "supabase"):
        assert set(thresholds.limits(mode, "Aggregated")) >= {"error_rate", "p95_ms", "p99_ms", "min_rps"}


@pytest.mark.parametrize("path", FILES, ids=lambda path: path.name)
def test_every_endpoint_named_is_one_the_locustfile_requests(path: Path) -> None:
    # A misspelt endpoint's limits would never apply.
    requested = set(re.findall(r'"((?:GET|PUT|PATCH) [^"{]+)"', (LOADTESTS / "locustfile.py").read_text()))
    named = {
        endpoint
        for mode, table in read(path).tables.items()
        for endpoint, value in table.items()
        if isinstance(value, dict) and endpoint != AGGREGATED
    }
    assert named <= requested, named - requested


def test_the_most_specific_limit_wins() -> None:
    thresholds = parse(
        """
        [default]
        p99_ms = 1000
        [default."GET x"]
        p99_ms = 900
        [rtdb]
        p99_ms = 800
        [rtdb."GET x"]
        p99_ms = 700
        """
    )
    assert thresholds.limits("supabase", "GET y") == {"p99_ms": 1000}
    assert thresholds.limits("supabase", "GET x") == {"p99_ms": 900}
    assert thresholds.limits("rtdb", "GET y") == {"p99_ms": 800}
    assert thresholds.limits("rtdb", "GET x") == {"p99_ms": 700}


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("[staging]\np99_ms = 1", "unknown table [staging]"),
        ("[default]\np98_ms = 1", "unknown limit 'p98_ms'"),
        ('[rtdb."GET x"]\np99_ms = "fast"', "must be a number"),
        ("[default]\np99_ms = -1", "must be a number"),
        ("[default\n", "thresholds:"),
    ],
)
def test_a_bad_file_is_refused_with_the_reason(text: str, reason: str) -> None:
    with pytest.raises(ThresholdsError, match=reason.replace("[", r"\[")):
        parse(text)


def test_a_run_within_every_limit_misses_nothing() -> None:
    thresholds = parse("[default]\nerror_rate = 0.01\np95_ms = 50\np99_ms = 100\nmin_rps = 10")
    assert check(thresholds, "supabase", [_row(), _row("Aggregated", rps=500)]) == []


def test_each_missed_limit_is_named_with_its_mode_and_endpoint() -> None:
    thresholds = parse(
        "[default]\nerror_rate = 0.01\np95_ms = 50\np99_ms = 100\n[rtdb.Aggregated]\nmin_rps = 600"
    )
    missed = check(
        thresholds,
        "rtdb",
        [_row(failures=2, p95_ms=60), _row("Aggregated", p99_ms=150, rps=500)],
    )
    assert missed == [
        "rtdb GET storage_policy: error_rate 0.02 > 0.01",
        "rtdb GET storage_policy: p95_ms 60 > 50",
        "rtdb Aggregated: p99_ms 150 > 100",
        "rtdb Aggregated: req/s 500.0 < min_rps 600",
    ]


def test_a_tiny_p99_is_missed() -> None:
    assert check(parse("[supabase]\np99_ms = 0.001"), "supabase", [_row()]) == [
        "supabase GET storage_policy: p99_ms 20 > 0.001"
    ]


def test_an_endpoint_with_no_requests_has_no_error_rate() -> None:
    assert _row(requests=0).error_rate == 0.0


@pytest.mark.parametrize(("text", "seconds"), [("20s", 20), ("20", 20), ("2m", 120), ("1m30s", 90)])
def test_durations(text: str, seconds: int) -> None:
    assert seconds_of(text) == seconds


@pytest.mark.parametrize("text", ["", "0s", "soon", "11m", "20h"])
def test_a_bad_or_unbounded_duration_is_refused(text: str) -> None:
    with pytest.raises(ValueError, match="DURATION"):
        seconds_of(text)
