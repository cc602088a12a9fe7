"""One ``pyinfra -y inventories/test.py deploy/<file>.py`` run, as ops type it, with its outcome: the exit
code, the seconds it took, and pyinfra's own count of operations that changed something (its results
table's "Success" column; a re-run with zero changes has none) and that failed.

The whole output goes to a log file beside the test hosts' key (it can be long); a failure's message
carries its end.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[2]
PYINFRA = Path(sys.executable).parent / "pyinfra"
INVENTORY = "inventories/test.py"
# pyinfra's results: "Grand total  <operations>  <success>  <error>  <no change>", "-" for none.
_GRAND_TOTAL = re.compile(r"^\s*Grand total\s+(\d+|-)\s+(\d+|-)\s+(\d+|-)\s+(\d+|-)\s*$", re.M)
# One operation's row of that table: its name, then hosts, success, error, no change.
_ROW = re.compile(r"^\s+(?P<name>\S.*?)\s{2,}(\d+)\s+(?P<success>\d+|-)\s+(\d+|-)\s+(\d+|-)\s*$")
_TAIL_LINES = 60


@dataclass(frozen=True, slots=True)
class DeployRun:
    deploy_file: str
    returncode: int
    seconds: float
    operations: int
    changed: int
    failed: int
    changed_operations: tuple[str, ...]
    log: Path
    tail: str

    def output(self) -> str:
        """Everything pyinfra printed (the log)."""
        return self.log.read_text(errors="replace")

    def describe(self) -> str:
        return (
            f"{self.deploy_file}: exit {self.returncode} after {self.seconds:.1f} s, {self.operations} "
            f"operations, {self.changed} changed {list(self.changed_operations)}, {self.failed} failed "
            f"(log {self.log})\n{self.tail}"
        )


def _count(value: str) -> int:
    return 0 if value == "-" else int(value)


def run(
    deploy_file: str,
    *,
    environment: Mapping[str, str],
    log: Path,
    timeout_s: float = 1200.0,
) -> DeployRun:
    """Run pyinfra on the test inventory; ``environment`` adds to this process's (hosts file, codes)."""
    started = time.monotonic()
    with log.open("w") as output:
        completed = subprocess.run(
            [str(PYINFRA), "-y", INVENTORY, deploy_file],
            cwd=PROJECT_ROOT,
            env={**os.environ, **environment},
            stdout=output,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            timeout=timeout_s,
            check=False,
        )
    seconds = time.monotonic() - started
    text = log.read_text(errors="replace")
    totals = _GRAND_TOTAL.findall(text)
    operations, changed, failed, _ = (_count(v) for v in totals[-1]) if totals else (0, 0, 0, 0)
    results = text.rsplit("--> Results:", 1)[-1] if "--> Results:" in text else ""
    changed_operations = tuple(
        match["name"]
        for match in map(_ROW.match, results.splitlines())
        if match and match["name"] != "Grand total" and match["success"] != "-"
    )
    tail = "\n".join(text.splitlines()[-_TAIL_LINES:])
    return DeployRun(
        deploy_file, completed.returncode, seconds, operations, changed, failed, changed_operations, log, tail
    )
