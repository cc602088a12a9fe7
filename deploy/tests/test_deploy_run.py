"""What ``deploy_run`` reads off pyinfra's output: the totals and the operations that changed something."""

from __future__ import annotations

from pathlib import Path

import pytest

from deploy.tests import deploy_run

# The end of a real run's output (pyinfra 3), shortened.
OUTPUT = """\
--> Starting operation: Observability | Restart prometheus for its changes
    [vps-test]   Success

--> Results:
    Operation                                                   Hosts   Success   Error   No Change
    Base system | Refresh apt's lists (at most hourly)                         1       -         -       1
    Base system | Keep time with systemd-timesyncd                             1       1         -       -
    Observability | Run prometheus-postgres-exporter                           1       1         -       -
    Observability | Restart prometheus for its changes                         1       -         -       1
    Grand total                                                                87      2         -       85

--> Disconnecting from hosts...
"""


def _run_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, output: str, returncode: int = 0
) -> deploy_run.DeployRun:
    """``deploy_run.run`` with a stand-in for pyinfra that prints ``output``."""
    script = tmp_path / "fake-pyinfra"
    (tmp_path / "out.txt").write_text(output)
    script.write_text(f"#!/bin/sh\ncat {tmp_path / 'out.txt'}\nexit {returncode}\n")
    script.chmod(0o755)
    monkeypatch.setattr(deploy_run, "PYINFRA", script)
    return deploy_run.run("deploy/vps.py", environment={}, log=tmp_path / "run.log")


def test_the_totals_and_the_changed_operations_are_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    result = _run_on(tmp_path, monkeypatch, OUTPUT)
    assert (result.returncode, result.operations, result.changed, result.failed) == (0, 87, 2, 0)
    assert result.changed_operations == (
        "Base system | Keep time with systemd-timesyncd",
        "Observability | Run prometheus-postgres-exporter",
    )
    assert result.output() == OUTPUT
    assert "87 operations, 2 changed" in result.describe()


def test_a_run_without_results_counts_nothing_and_keeps_its_exit_code(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    result = _run_on(tmp_path, monkeypatch, "--> pyinfra error: could not connect\n", returncode=1)
    assert (result.returncode, result.operations, result.changed, result.failed) == (1, 0, 0, 0)
    assert result.changed_operations == ()
