"""One bounded wrk run against a server, with the server's CPU time over it.

wrk runs with one thread (``-t1``), pinned with ``taskset`` to the load core, for ``-d`` seconds
(and is stopped by PID if it outlives that by ``GRACE_S``), driving ``storage_policy.lua``.
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import replace
from pathlib import Path
from typing import Final

from harness import processes
from loadtests.bench import proc
from loadtests.bench.figures import WrkRun, parse_wrk_output

SCRIPT: Final = Path(__file__).with_name("storage_policy.lua")
GRACE_S: Final = 30.0
# Generous: a request slower than this is a timeout error, not a latency sample.
REQUEST_TIMEOUT_S: Final = 5
STOP_LADDER: Final = processes.terminate(5.0)


class WrkFailed(RuntimeError):
    """wrk exited with an error or outlived its bound."""


def wrk_path() -> str:
    found = shutil.which("wrk")
    if found is None:
        raise WrkFailed("wrk is not installed: apt-get install wrk (make bootstrap does, .ci/programs.tsv)")
    return found


def command(
    url: str, *, tokens_file: Path, method: str, connections: int, seconds: int, cpu: int | None
) -> list[str]:
    """The wrk command line (prefixed with ``taskset -c CPU`` when ``cpu`` is given)."""
    run = [
        wrk_path(), "-t1", f"-c{connections}", f"-d{seconds}s", f"--timeout={REQUEST_TIMEOUT_S}s",
        "-s", str(SCRIPT), url, "--", str(tokens_file), method,
    ]  # fmt: skip
    return run if cpu is None else proc.pinned(run, {cpu})


def run(
    url: str,
    *,
    tokens_file: Path,
    method: str,
    connections: int,
    seconds: int,
    cpu: int | None,
    server_pid: int,
    log_dir: Path,
) -> WrkRun:
    """Run wrk once; the result carries the CPU time the server's process tree spent meanwhile."""
    log = log_dir / "wrk.log"
    log.unlink(missing_ok=True)
    argv = command(
        url, tokens_file=tokens_file, method=method, connections=connections, seconds=seconds, cpu=cpu
    )
    cpu_before = proc.tree_cpu_seconds(server_pid)
    _identity, child = processes.spawn(argv, log_path=log)
    try:
        child.wait(timeout=seconds + GRACE_S)
    except subprocess.TimeoutExpired:
        raise WrkFailed(f"wrk outlived -d{seconds}s by {GRACE_S:g} s; log {log}") from None
    finally:
        processes.stop_child(child, ladder=STOP_LADDER)
    cpu_after = proc.tree_cpu_seconds(server_pid)
    output = log.read_text(errors="replace")
    if child.returncode != 0:
        raise WrkFailed(f"wrk exited with {child.returncode}:\n{output[-2000:]}")
    return replace(parse_wrk_output(output), cpu_s=cpu_after - cpu_before)
