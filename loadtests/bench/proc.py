"""A server's process tree as ``/proc`` shows it: its CPU time, and pinning it to cores.

A server is a process and its descendants: uvicorn with several workers forks them, the postmaster
forks a backend per connection and its helpers. CPU time is utime + stime of ``/proc/PID/stat``
(fields 14 and 15, clock ticks, every thread of the process included), summed over the tree.
Pinning sets the affinity of every thread of every process in the tree; children forked later
inherit it from their parent.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Final

PROC: Final = Path("/proc")
# Fields after the ")" that closes the command name: state is field 3, so field n is at n - 3.
_PPID: Final = 4 - 3
_UTIME: Final = 14 - 3
_STIME: Final = 15 - 3


class StatFormatError(ValueError):
    """Text that is no ``/proc/PID/stat`` line."""


def _fields_after_name(stat_text: str) -> list[str]:
    # The command name may hold spaces and parentheses; it ends at the last ")".
    end = stat_text.rfind(")")
    fields = stat_text[end + 2 :].split() if end >= 0 else []
    if len(fields) <= _STIME:
        raise StatFormatError(f"not a /proc/PID/stat line: {stat_text[:200]!r}")
    return fields


def cpu_ticks(stat_text: str) -> int:
    """utime + stime of one ``/proc/PID/stat`` line, in clock ticks."""
    fields = _fields_after_name(stat_text)
    return int(fields[_UTIME]) + int(fields[_STIME])


def parent_pid(stat_text: str) -> int:
    return int(_fields_after_name(stat_text)[_PPID])


def ticks_to_seconds(ticks: int) -> float:
    return ticks / os.sysconf("SC_CLK_TCK")


def _stat(pid: int) -> str | None:
    try:
        return (PROC / str(pid) / "stat").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None


def descendants(pid: int) -> list[int]:
    """The live descendants of ``pid`` (children, their children, ...)."""
    children: dict[int, list[int]] = {}
    for entry in PROC.iterdir():
        if not entry.name.isdigit():
            continue
        text = _stat(int(entry.name))
        if text is not None:
            with contextlib.suppress(StatFormatError, ValueError):
                children.setdefault(parent_pid(text), []).append(int(entry.name))
    found: list[int] = []
    pending = [pid]
    while pending:
        for child in children.get(pending.pop(), []):
            found.append(child)
            pending.append(child)
    return found


def tree_cpu_seconds(pid: int) -> float:
    """CPU time (user + system) of ``pid`` and its live descendants so far, in seconds."""
    total = 0
    for member in (pid, *descendants(pid)):
        text = _stat(member)
        if text is not None:
            total += cpu_ticks(text)
    return ticks_to_seconds(total)


def _threads(pid: int) -> Iterable[int]:
    try:
        return [int(task.name) for task in (PROC / str(pid) / "task").iterdir()]
    except (FileNotFoundError, ProcessLookupError):
        return []


def pin_tree(pid: int, cpus: set[int]) -> int:
    """Pin every thread of ``pid`` and of its descendants to ``cpus``; returns how many were pinned."""
    count = 0
    for member in (pid, *descendants(pid)):
        for thread in _threads(member):
            with contextlib.suppress(ProcessLookupError):  # a thread that just ended
                os.sched_setaffinity(thread, cpus)
                count += 1
    return count


def taskset_path() -> str:
    taskset = shutil.which("taskset")
    if taskset is None:
        raise FileNotFoundError("taskset is missing (Debian's util-linux provides it)")
    return taskset


def pinned(command: Sequence[str], cpus: set[int]) -> list[str]:
    """``command`` run by ``taskset -c CPUS``: pinned from its first instruction, every thread it
    will ever start included."""
    return [taskset_path(), "-c", ",".join(str(cpu) for cpu in sorted(cpus)), *command]
