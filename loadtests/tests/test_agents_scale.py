"""``make agents-scale``: its figures and verdict as pure functions, and the whole tool at a small,
bounded size against a private stack (50 agents in 2 processes, a few seconds of commands, an API
restart). Nothing here asserts a timing: only that every command succeeded once, every agent was
commanded and every agent came back."""

from __future__ import annotations

import math

import pytest

from loadtests.agents_scale.__main__ import _parser, main, options_of
from loadtests.agents_scale.figures import Figures, Reconnects, histogram, percentile, table, verdict


def _figures(**changes: object) -> Figures:
    base: dict[str, object] = {
        "agents": 3,
        "fleet_processes": 1,
        "connect_s": 1.0,
        "commands": 4,
        "succeeded": 4,
        "command_window_s": 2.0,
        "round_trips_s": (0.01, 0.02, 0.03, 0.2),
        "agents_commanded": 3,
        "duplicate_runs": 0,
        "rss_before_kib": 1000,
        "rss_connected_kib": 1300,
        "heartbeats": 6,
        "heartbeat_window_s": 3.0,
        "reconnects": Reconnects(agents=3, offsets_s=(0.5, 1.2, 3.9), api_ready_after_s=0.4),
    }
    return Figures(**{**base, **changes})  # type: ignore[arg-type]


def test_percentile_is_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 0.5) == 50
    assert percentile(values, 0.99) == 99
    assert percentile(values, 1.0) == 100
    assert percentile([7.0], 0.99) == 7
    assert math.isnan(percentile([], 0.5))


def test_histogram_counts_every_second_up_to_the_last_arrival() -> None:
    assert histogram([0.1, 0.9, 2.5, 2.6, 2.7]) == [(0.0, 2), (1.0, 0), (2.0, 3)]
    assert histogram([]) == []


def test_figures_per_agent_and_per_second() -> None:
    figures = _figures()
    assert figures.kib_per_agent == 100
    assert figures.commands_per_s == 2
    assert figures.reconnects is not None
    assert figures.reconnects.peak_per_second == 1
    lines = table(figures)
    assert any(line.startswith("round trip") and "p99 200 ms" in line for line in lines)
    assert any("100.0 KiB per connected agent" in line for line in lines)
    assert any(line.startswith("reconnect") and "3 of 3 back" in line for line in lines)


def test_verdict_names_every_correctness_problem() -> None:
    assert verdict(_figures()) == []
    problems = verdict(
        _figures(
            succeeded=3,
            agents_commanded=2,
            duplicate_runs=1,
            reconnects=Reconnects(agents=3, offsets_s=(0.5,), api_ready_after_s=0.4),
        )
    )
    assert problems == [
        "1 commands did not succeed",
        "only 2 of 3 agents received a command",
        "1 commands ran more than once on an agent",
        "2 agents did not reconnect after the API restarted",
    ]


@pytest.mark.parametrize("argv", [["--agents", "0"], ["--processes", "0"], ["--command-seconds", "0"]])
def test_bad_arguments_are_refused(argv: list[str]) -> None:
    with pytest.raises(SystemExit):
        options_of(_parser().parse_args(argv))


@pytest.mark.slow
@pytest.mark.integration
def test_a_small_fleet_runs_end_to_end(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["--agents", "50", "--processes", "2", "--command-seconds", "3", "--enqueuers", "4"])
    output = capsys.readouterr().out
    assert code == 0, output
    assert "agents                 50 simulated, in 2 processes" in output
    assert "0 run twice" in output
    assert "reconnect              50 of 50 back" in output
