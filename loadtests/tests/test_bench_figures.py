"""The pure parts of ``make bench``: wrk's line, medians, ratios, the table and the closing line."""

from __future__ import annotations

from pathlib import Path

import pytest

from loadtests.bench.figures import (
    Figure,
    Ratios,
    WrkOutputError,
    WrkRun,
    mix_cpu_us,
    parse_wrk_output,
    ratio,
)
from loadtests.bench.measure import (
    API_RTDB,
    API_SUPABASE,
    FLOOR,
    Cores,
    Measurer,
    Options,
    ratios,
    table,
)

WRK_OUTPUT = """Running 5s test @ http://127.0.0.1:41234/api/v1/settings/storage_policy
  1 threads and 32 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     6.91ms    1.20ms  25.71ms   91.22%
    Req/Sec     4.65k   210.11     4.90k    80.00%
  23254 requests in 5.00s, 9.85MB read
Requests/sec:   4650.12
Transfer/sec:      1.97MB
bench-wrk {"requests":23254,"duration_us":5000700,"p50_us":6712,"p99_us":11480,"non2xx":3,"conflicts":1,\
"connect_errors":0,"read_errors":2,"write_errors":0,"timeouts":1}
"""


def _run(rps: float, p50: float = 5.0, p99: float = 9.0, cpu_us: float = 200.0, **counts: int) -> WrkRun:
    requests = round(rps * 5)
    return WrkRun(
        requests=requests,
        duration_s=5.0,
        p50_ms=p50,
        p99_ms=p99,
        non2xx=counts.get("non2xx", 0),
        conflicts=counts.get("conflicts", 0),
        socket_errors=counts.get("socket_errors", 0),
        cpu_s=cpu_us * requests / 1e6,
    )


def test_the_line_of_the_lua_script_is_read_from_wrks_output() -> None:
    run = parse_wrk_output(WRK_OUTPUT)
    assert run.requests == 23254
    assert run.duration_s == pytest.approx(5.0007)
    assert run.rps == pytest.approx(23254 / 5.0007)
    assert (run.p50_ms, run.p99_ms) == (6.712, 11.48)
    assert (run.non2xx, run.conflicts, run.socket_errors) == (3, 1, 3)
    assert run.errors == 6
    assert run.cpu_s == 0.0


def test_the_last_line_wins_and_cpu_per_request_is_in_microseconds() -> None:
    first = WRK_OUTPUT.replace('"requests":23254', '"requests":1')
    run = parse_wrk_output(first + WRK_OUTPUT)
    assert run.requests == 23254
    assert WrkRun(1000, 1.0, 1.0, 2.0, 0, 0, 0, cpu_s=0.25).cpu_us_per_request == 250.0
    assert WrkRun(0, 1.0, 0.0, 0.0, 0, 0, 0, cpu_s=0.25).cpu_us_per_request == 0.0


@pytest.mark.parametrize(
    ("output", "message"),
    [
        ("Requests/sec: 10\n", "no 'bench-wrk' line"),
        ("bench-wrk {not json\n", "not JSON"),
        ("bench-wrk [1, 2]\n", "not an object"),
        ('bench-wrk {"requests": 1}\n', "has no count"),
        (WRK_OUTPUT.replace('"non2xx":3', '"non2xx":-3'), "non2xx"),
        (WRK_OUTPUT.replace('"timeouts":1', '"timeouts":true'), "timeouts"),
    ],
)
def test_a_missing_or_malformed_line_is_an_error(output: str, message: str) -> None:
    with pytest.raises(WrkOutputError, match=message):
        parse_wrk_output(output)


def test_a_figure_is_the_median_of_each_field_and_the_total_of_errors() -> None:
    runs = (
        _run(400, p50=5, p99=30, cpu_us=300),
        _run(500, p50=7, p99=10, cpu_us=100, non2xx=1),
        _run(450, p50=6, p99=20, cpu_us=200, socket_errors=2, conflicts=1, non2xx=1),
    )
    figure = Figure(API_SUPABASE, "GET", 32, runs)
    assert figure.rps == pytest.approx(450)
    assert (figure.p50_ms, figure.p99_ms) == (6, 20)
    assert figure.cpu_us_per_request == pytest.approx(200)
    assert (figure.errors, figure.conflicts) == (4, 1)
    assert figure.flags == "ERRORS 412!"
    assert Figure(FLOOR, "GET", 32, (_run(1),)).flags == ""
    document = figure.to_json()
    assert document["rps"] == figure.rps
    assert isinstance(document["runs"], list)
    assert len(document["runs"]) == 3


def test_a_figure_needs_a_run() -> None:
    with pytest.raises(ValueError, match="at least one run"):
        Figure(FLOOR, "GET", 32, ())


def test_ratios_and_the_closing_line() -> None:
    assert ratio(1.0, 4.0) == 0.25
    assert ratio(None, 4.0) is None
    assert ratio(1.0, 0.0) is None
    assert mix_cpu_us([]) is None
    line = Ratios(get=0.7049, patch=0.6, rtdb_cpu_per_req_vs_supabase=1.234, rtdb_get_at_40ms=None).line()
    assert line == "ratios: get=0.70 patch=0.60 rtdb_cpu_per_req_vs_supabase=1.23 rtdb_get_at_40ms=n/a"


def _measurer(figures: list[Figure]) -> Measurer:
    measurer = Measurer(Options(), Cores({0}, 1), Path("tokens.txt"), Path("logs"))
    measurer.figures.extend(figures)
    return measurer


def test_the_ratios_of_a_bench() -> None:
    figures = [
        Figure(API_SUPABASE, "GET", 32, (_run(350, cpu_us=1000),)),
        Figure(API_SUPABASE, "PATCH", 32, (_run(300, cpu_us=1500),)),
        Figure(FLOOR, "GET", 32, (_run(500, cpu_us=100),)),
        Figure(FLOOR, "PATCH", 32, (_run(500, cpu_us=200),)),
        Figure(API_RTDB, "GET", 32, (_run(400, cpu_us=2000),)),
        Figure(API_RTDB, "PATCH", 32, (_run(200, cpu_us=3000),)),
        Figure(API_RTDB, "GET", 64, (_run(400),), emulator_latency_ms=0),
        Figure(API_RTDB, "GET", 64, (_run(100),), emulator_latency_ms=40),
    ]
    result = ratios(_measurer(figures))
    assert result.get == pytest.approx(0.7)
    assert result.patch == pytest.approx(0.6)
    # One GET plus one PATCH: (2000 + 3000) / (1000 + 1500).
    assert result.rtdb_cpu_per_req_vs_supabase == pytest.approx(2.0)
    assert result.rtdb_get_at_40ms == pytest.approx(0.25)
    assert (
        result.line() == "ratios: get=0.70 patch=0.60 rtdb_cpu_per_req_vs_supabase=2.00 rtdb_get_at_40ms=0.25"
    )

    without_latency = ratios(_measurer(figures[:-1]))
    assert without_latency.rtdb_get_at_40ms is None
    assert without_latency.line().endswith("rtdb_get_at_40ms=n/a")
    assert ratios(_measurer(figures[:5])).rtdb_cpu_per_req_vs_supabase is None


def test_the_table_puts_the_floor_first_and_compares_with_it() -> None:
    figures = [
        Figure(API_SUPABASE, "GET", 32, (_run(350, cpu_us=1000, non2xx=2),)),
        Figure(FLOOR, "GET", 32, (_run(500, cpu_us=100),)),
        Figure(API_RTDB, "GET", 64, (_run(400),), emulator_latency_ms=40),
    ]
    header, floor, supabase, rtdb = table(figures)
    assert "req/s/floor" in header
    assert floor.startswith("floor ")
    assert supabase.split()[:9] == ["api-supabase", "GET", "32", "-", "350", "5.0", "9.0", "2", "1000"]
    assert supabase.split()[9:] == ["0.70", "10.00", "ERRORS"]
    # No floor at 64 connections: no ratio.
    assert rtdb.split()[3] == "40"
    assert rtdb.split()[-2:] == ["-", "-"]


@pytest.mark.parametrize(
    ("workers", "available", "server", "load"),
    [
        (1, {0, 1}, {0}, 1),
        (1, {2, 3, 5}, {2}, 3),
        (2, {0, 1}, {0, 1}, 1),
        (1, {0}, {0}, None),
    ],
)
def test_the_cores(workers: int, available: set[int], server: set[int], load: int | None) -> None:
    cores = Cores.choose(workers, available)
    assert (cores.server, cores.load) == (server, load)
    assert cores.notes
    assert cores.pinned_server == ({min(available)} if load is not None else server)
    if workers != 1:
        assert "unpinned" in cores.notes[0]
