"""CPU accounting and pinning of ``make bench`` from ``/proc`` (the text, and this test's own process)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from loadtests.bench import proc

# A command name with spaces and parentheses: fields are counted after the last ")".
STAT = (
    "4242 (python (x) y) S 4200 4242 4242 0 -1 4194560 9000 0 0 0 "
    "1234 56 7 8 20 0 12 0 3000 123456789 4000 18446744073709551615"
)


def test_cpu_ticks_are_utime_plus_stime() -> None:
    assert proc.cpu_ticks(STAT) == 1234 + 56
    assert proc.parent_pid(STAT) == 4200


@pytest.mark.parametrize("text", ["", "4242 (python) S 1 2", "no parenthesis here"])
def test_a_line_that_is_no_stat_line_is_refused(text: str) -> None:
    with pytest.raises(proc.StatFormatError):
        proc.cpu_ticks(text)


def test_ticks_become_seconds() -> None:
    assert proc.ticks_to_seconds(os.sysconf("SC_CLK_TCK")) == 1.0


def test_the_tree_of_a_process_counts_its_children() -> None:
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        assert child.pid in proc.descendants(os.getpid())
        assert proc.tree_cpu_seconds(os.getpid()) >= proc.tree_cpu_seconds(child.pid) >= 0.0
    finally:
        child.kill()
        child.wait()


def test_pinning_a_tree_pins_each_thread_of_each_process() -> None:
    cpu = min(os.sched_getaffinity(0))
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        assert proc.pin_tree(child.pid, {cpu}) >= 1
        assert os.sched_getaffinity(child.pid) == {cpu}
    finally:
        child.kill()
        child.wait()


def test_a_pinned_command_runs_under_taskset() -> None:
    command = proc.pinned(["wrk", "-t1"], {1, 0})
    assert os.path.basename(command[0]) == "taskset"
    assert command[1:] == ["-c", "0,1", "wrk", "-t1"]
