"""What ``make bench`` prepares before it measures: options, tenants and their files, wrk's command."""

from __future__ import annotations

import json
import os
from pathlib import Path

import jwt
import pytest

from harness.fixtures.tools import require_tool
from loadtests.bench import tenants, wrk
from loadtests.bench.__main__ import _parser, options_of
from loadtests.bench.measure import Options
from loadtests.reference.floor import read_tenants

SECRET = "a-test-secret-of-at-least-32-characters"


def test_default_and_quick_options() -> None:
    assert options_of(_parser().parse_args([])) == Options()
    quick = options_of(_parser().parse_args(["--quick", "--workers", "2"]))
    assert (quick.seconds, quick.warmup_seconds, quick.runs, quick.workers) == (1, 1, 3, 2)
    assert options_of(_parser().parse_args(["--quick", "--seconds", "3"])).seconds == 3
    assert options_of(_parser().parse_args([])).shadow is False
    assert options_of(_parser().parse_args(["--quick", "--shadow"])).shadow is True


@pytest.mark.parametrize(
    "arguments",
    [["--seconds", "0"], ["--seconds", "61"], ["--runs", "0"], ["--tenants", "0"], ["--workers", "0"]],
)
def test_options_out_of_bounds_are_refused(arguments: list[str]) -> None:
    with pytest.raises(SystemExit):
        options_of(_parser().parse_args(arguments))


def test_each_tenant_gets_a_valid_token_of_its_own(tmp_path: Path) -> None:
    population = tenants.mint(3, SECRET)
    assert [tenant.tenant_id for tenant in population] == ["bench-0000", "bench-0001", "bench-0002"]
    assert len({tenant.token for tenant in population}) == 3
    for tenant in population:
        claims = jwt.decode(tenant.token, SECRET, algorithms=["HS256"], audience=tenants.AUDIENCE)
        assert claims["app_metadata"]["tenant_id"] == tenant.tenant_id
        assert claims["sub"] == tenant.uid

    tokens_file = tenants.write_tokens(population, tmp_path / "tokens.txt")
    assert tokens_file.read_text().splitlines() == [tenant.token for tenant in population]
    floor_map = tenants.write_floor_map(population, tmp_path / "floor.json")
    assert json.loads(floor_map.read_text())[population[1].token] == ["bench-0001", population[1].uid]
    assert read_tenants(floor_map) == {t.token: (t.tenant_id, t.uid) for t in population}


def test_wrk_runs_one_thread_for_a_bounded_time_pinned_when_asked(tmp_path: Path) -> None:
    require_tool("wrk", "apt-get install wrk")
    tokens_file = tmp_path / "tokens.txt"
    url = "http://127.0.0.1:1/api/v1/settings/storage_policy"
    argv = wrk.command(url, tokens_file=tokens_file, method="PATCH", connections=32, seconds=5, cpu=1)
    assert [os.path.basename(argv[0]), argv[1], argv[2]] == ["taskset", "-c", "1"]
    run = argv[3:]
    assert os.path.basename(run[0]) == "wrk"
    assert {"-t1", "-c32", "-d5s"} <= set(run)
    assert run[run.index("-s") + 1] == str(wrk.SCRIPT)
    assert run[-4:] == [url, "--", str(tokens_file), "PATCH"]
    unpinned = wrk.command(url, tokens_file=tokens_file, method="GET", connections=64, seconds=1, cpu=None)
    assert os.path.basename(unpinned[0]) == "wrk"
    assert wrk.SCRIPT.is_file()
