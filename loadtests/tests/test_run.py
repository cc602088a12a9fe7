"""``python -m loadtests.run`` end to end: a short real run against its own native stack.

A threshold broken on purpose (a tiny p99) must make the run exit 1 naming the missed limit, after
it has printed the mode's table and stopped the stack it started. Its own ``BOTMOX_HARNESS_HOME``
and reports directory keep it apart from a developer's stack and ``build/loadtests``.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from harness import processes
from harness.stack.native import NativeRuntime
from harness.stack.state import HOME_VARIABLE, HarnessPaths, load

pytestmark = [pytest.mark.integration, pytest.mark.slow]
ROOT = Path(__file__).resolve().parents[2]


def test_a_tiny_p99_fails_the_run_with_the_reason(tmp_path: Path) -> None:
    paths = HarnessPaths(tmp_path / "harness-home")
    thresholds = tmp_path / "tiny.toml"
    thresholds.write_text("[supabase.Aggregated]\np99_ms = 0.001\n")
    command = [
        sys.executable, "-m", "loadtests.run",
        "--backend", "supabase", "--users", "2", "--duration", "5s",
        "--api-workers", "2",
        "--thresholds", str(thresholds), "--reports", str(tmp_path / "reports"),
    ]  # fmt: skip
    try:
        done = subprocess.run(
            command,
            cwd=ROOT,
            env={**os.environ, HOME_VARIABLE: str(paths.home)},
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
    finally:
        leftover = load(paths)
        if leftover is not None:
            NativeRuntime(paths).down(leftover)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "== supabase (storage_policy, 2 users, 5s, 2 API workers) ==" in done.stdout
    assert "load: thresholds missed:" in done.stderr
    assert "supabase Aggregated: p99_ms " in done.stderr
    assert "> 0.001" in done.stderr
    # Only the broken limit is missed: the rest of the run was sound.
    missed = done.stderr.split("load: thresholds missed:", 1)[1].strip().splitlines()
    assert len(missed) == 1, done.stderr
    assert (tmp_path / "reports" / "supabase" / "storage_policy_final_stats.csv").exists()
    # It stopped the stack it brought up.
    assert "python -m harness down" in done.stdout
    assert leftover is None or not any(map(processes.is_running, leftover.processes.values()))
