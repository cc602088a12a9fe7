"""Reading locust's stats CSV and the tables of ``make load`` (no load is run)."""

from __future__ import annotations

from pathlib import Path

from loadtests.report import mode_table, read_exceptions, read_stats, side_by_side, tabs_line
from loadtests.thresholds import Row

CSV = """Type,Name,Request Count,Failure Count,Median Response Time,Average Response Time,Min Response Time,\
Max Response Time,Average Content Size,Requests/s,Failures/s,50%,66%,75%,80%,90%,95%,98%,99%,99.9%,99.99%,100%
GET,GET storage_policy,4579,0,7,7.1,1,70,60,508.3,0.0,7,8,9,9,11,12,14,17,68,71,71
PATCH,PATCH storage_policy,482,5,9,9.0,2,24,60,53.5,0.5,9,10,11,12,14,16,18,20,24,24,24
PUT,PUT /idle,0,0,0,0,0,0,0,0.0,0.0,N/A,N/A,N/A,N/A,N/A,N/A,N/A,N/A,N/A,N/A,N/A
,Aggregated,5061,5,7,7.3,1,70,60,561.8,0.5,7,8,9,10,11,13,16,18,67,71,71
"""


def test_read_stats(tmp_path: Path) -> None:
    path = tmp_path / "x_stats.csv"
    path.write_text(CSV)
    rows = read_stats(path)
    assert [row.name for row in rows] == [
        "GET storage_policy",
        "PATCH storage_policy",
        "PUT /idle",
        "Aggregated",
    ]
    assert rows[1] == Row("PATCH storage_policy", 482, 5, 53.5, 9.0, 16.0, 20.0)
    assert rows[2].p99_ms == 0.0


def _rows() -> list[Row]:
    return [
        Row("GET storage_policy", 4579, 0, 508.3, 7, 12, 17),
        Row("Aggregated", 5061, 5, 561.8, 7, 13, 18),
    ]


def test_mode_table_has_a_line_per_endpoint_and_counts_conflicts_apart() -> None:
    lines = mode_table(_rows(), {"PATCH storage_policy": 55}).splitlines()
    assert lines[0].split() == [
        "endpoint",
        "requests",
        "req/s",
        "p50",
        "ms",
        "p95",
        "ms",
        "p99",
        "ms",
        "errors",
        "412",
    ]
    assert lines[2].split() == [
        "GET",
        "storage_policy",
        "4579",
        "508.3",
        "7",
        "12",
        "17",
        "0",
        "(0.00%)",
        "0",
    ]
    assert lines[3].split() == ["Aggregated", "5061", "561.8", "7", "13", "18", "5", "(0.10%)", "55"]


def test_side_by_side_puts_the_modes_next_to_each_other() -> None:
    rtdb = [Row("PATCH storage_policy", 10, 0, 20.0, 9, 30, 40), Row("Aggregated", 10, 0, 20.0, 9, 30, 40)]
    lines = side_by_side({"rtdb": rtdb, "supabase": _rows()}).splitlines()
    assert lines[0].split()[:5] == ["endpoint", "rtdb", "req/s", "rtdb", "p95"]
    assert lines[2].split() == ["PATCH", "storage_policy", "20.0", "30", "40", "0", "-", "-", "-", "-"]
    assert lines[3].split() == ["GET", "storage_policy", "-", "-", "-", "-", "508.3", "12", "17", "0"]
    assert lines[-1].split()[0] == "Aggregated"


def test_tabs_line() -> None:
    assert tabs_line(4, 38.8, 17, 500).endswith("9.70 rounds/s per tab (target 10), p95 17 ms: holds")
    assert tabs_line(8, 40.0, 17, 500).endswith(": does NOT hold")
    assert tabs_line(4, 40.0, 700, 500).endswith(": does NOT hold")


def test_read_exceptions(tmp_path: Path) -> None:
    path = tmp_path / "x_exceptions.csv"
    assert read_exceptions(path) == 0
    path.write_text('Count,Message,Traceback,Nodes\n340,boom,"  File x\n",local\n2,other,tb,local\n')
    assert read_exceptions(path) == 342
