"""Processes the stack starts, identified by PID *and* start time so a reused PID is never signalled.

``/proc/<pid>/stat`` field 22 is the process's start time in clock ticks since boot: together with
the PID it names one process for the machine's uptime. Each service runs in its own session, so its
process group id is its PID and helpers it forks can be stopped with it.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

POLL_S = 0.05
# Fields of /proc/<pid>/stat after the ")" that closes the command name start at field 3 (state).
_STATE_FIELD = 0
_START_TIME_FIELD = 22 - 3


@dataclass(frozen=True, slots=True)
class ProcessIdentity:
    pid: int
    start_ticks: int

    def to_json(self) -> dict[str, int]:
        return {"pid": self.pid, "start_ticks": self.start_ticks}

    @classmethod
    def from_json(cls, data: Mapping[str, object]) -> ProcessIdentity:
        pid, ticks = data.get("pid"), data.get("start_ticks")
        if not isinstance(pid, int) or not isinstance(ticks, int):
            raise ValueError(f"a process entry needs integer pid and start_ticks, got {dict(data)!r}")
        return cls(pid, ticks)


def _stat_fields(pid: int) -> list[str] | None:
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    # The command name may hold spaces and parentheses; it ends at the last ")".
    return raw[raw.rfind(")") + 2 :].split()


def identify(pid: int) -> ProcessIdentity | None:
    """The identity of a live process, ``None`` when there is no such process."""
    fields = _stat_fields(pid)
    if fields is None or fields[_STATE_FIELD] in ("Z", "X"):
        return None
    return ProcessIdentity(pid, int(fields[_START_TIME_FIELD]))


def is_running(identity: ProcessIdentity) -> bool:
    """True while that very process lives (a zombie counts as gone; a reused PID is another process)."""
    return identify(identity.pid) == identity


def _reap(pid: int) -> None:
    # Our own children stay zombies until waited for; other processes are reaped by their parent.
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)


def spawn(
    command: Sequence[str], *, environment: Mapping[str, str], log_path: Path, cwd: Path
) -> tuple[ProcessIdentity, subprocess.Popen[bytes]]:
    """Start a command in its own session with stdout and stderr appended to ``log_path``."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("ab") as log:
        child = subprocess.Popen(  # noqa: S603 - commands come from the stack description
            list(command),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=cwd,
            env=dict(environment),
            start_new_session=True,  # Ctrl-C in the terminal reaches the CLI, which stops services in order
        )
    identity = identify(child.pid)
    if identity is None:
        child.wait(timeout=5)
        raise RuntimeError(f"{command[0]} exited at once ({child.returncode}); see {log_path}")
    return identity, child


def wait_gone(identity: ProcessIdentity, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        _reap(identity.pid)
        if not is_running(identity):
            return True
        time.sleep(POLL_S)
    return not is_running(identity)


def stop(
    identity: ProcessIdentity,
    *,
    first_signal: signal.Signals = signal.SIGTERM,
    whole_group: bool = True,
    grace_s: float = 15.0,
) -> bool:
    """Stop exactly that process: ``first_signal``, then SIGKILL after ``grace_s``.

    Returns False when it was already gone (or its PID now belongs to another process, which is
    left alone). ``whole_group`` signals its process group too (the group it leads).
    """
    if not is_running(identity):
        _reap(identity.pid)
        return False
    for sig, grace in ((first_signal, grace_s), (signal.SIGKILL, 10.0)):
        if not is_running(identity):
            break
        with contextlib.suppress(ProcessLookupError, PermissionError):
            if whole_group and os.getpgid(identity.pid) == identity.pid:
                os.killpg(identity.pid, sig)
            else:
                os.kill(identity.pid, sig)
        if wait_gone(identity, grace):
            break
    if is_running(identity):
        raise RuntimeError(f"process {identity.pid} survived SIGKILL")
    return True
