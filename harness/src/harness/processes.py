"""Child processes of the harness: spawn with identity, wait until ready, stop with a signal ladder.

A process is named by its PID *and* its start time (``/proc/<pid>/stat`` field 22, clock ticks since
boot), so a PID the kernel has since given to another process is never signalled. Children run in
a session of their own: Ctrl-C in a terminal reaches the harness, which stops them in order, and
their process group id is their PID, so the helpers they fork are stopped with them. Chromium, the
RTDB emulator, PostgreSQL and the stack's services all start and stop through this module.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import httpx

T = TypeVar("T")
POLL_S = 0.05
LOG_TAIL_CHARS = 3000
# Fields of /proc/<pid>/stat after the ")" that closes the command name start at field 3 (state).
_STATE_FIELD = 0
_START_TIME_FIELD = 22 - 3

# Signal, then how long to wait for the process to go before the next rung.
Ladder = tuple[tuple[signal.Signals, float], ...]


def terminate(grace_s: float) -> Ladder:
    """SIGTERM, then SIGKILL when the process is still there after ``grace_s``."""
    return ((signal.SIGTERM, grace_s), (signal.SIGKILL, 10.0))


TERMINATE = terminate(15.0)


class ProcessNotReady(RuntimeError):
    """A process exited or did not become ready in time; the message quotes its log's tail."""


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


def _reap(pid: int, child: subprocess.Popen[Any] | None) -> None:
    # Our own children stay zombies until waited for; other processes are reaped by their parent.
    # Through the Popen when we have it, so it keeps the exit status.
    if child is not None:
        child.poll()
        return
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)


@dataclass(frozen=True, slots=True)
class Account:
    """The OS user a child runs as (PostgreSQL refuses to run as root)."""

    uid: int
    gid: int


def spawn(
    command: Sequence[str],
    *,
    log_path: Path,
    environment: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    account: Account | None = None,
) -> tuple[ProcessIdentity, subprocess.Popen[bytes]]:
    """Start a command in its own session with stdout and stderr appended to ``log_path``.

    ``environment`` ``None`` inherits the caller's; ``account`` drops to that user (and no
    supplementary groups)."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("ab") as log:
        child = subprocess.Popen(  # noqa: S603 - commands of the harness and the stack description
            list(command),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=cwd,
            env=dict(environment) if environment is not None else None,
            start_new_session=True,
            user=account.uid if account else None,
            group=account.gid if account else None,
            extra_groups=[] if account else None,
        )
    identity = identify(child.pid)
    if identity is None:
        child.wait(timeout=5)
        raise ProcessNotReady(
            f"{command[0]} exited at once ({child.returncode}); log {log_path}:\n{log_tail(log_path)}"
        )
    return identity, child


def log_tail(path: Path, limit: int = LOG_TAIL_CHARS) -> str:
    try:
        return path.read_text(errors="replace")[-limit:]
    except OSError:
        return "(no log)"


def wait_ready(
    name: str,
    ready: Callable[[], T | None],
    *,
    alive: Callable[[], bool],
    timeout_s: float,
    log_path: Path | None,
    poll_s: float = POLL_S,
    waiting_for: str = "",
    error: type[Exception] = ProcessNotReady,
) -> T:
    """Call ``ready`` until it returns something other than ``None`` and return that.

    Raises ``error`` (``ProcessNotReady`` unless the caller names its own) quoting the log's tail
    when ``alive`` turns false or ``timeout_s`` passes (``waiting_for`` says what was awaited)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        answer = ready()
        if answer is not None:
            return answer
        if not alive():
            raise error(f"{name} exited during start-up{_log_note(log_path)}")
        time.sleep(poll_s)
    awaited = f" ({waiting_for})" if waiting_for else ""
    raise error(f"{name} not ready after {timeout_s:g} s{awaited}{_log_note(log_path)}")


def wait_http_ready(
    name: str,
    process: subprocess.Popen[Any],
    url: str,
    *,
    timeout_s: float,
    log_path: Path | None,
    error: type[Exception] = ProcessNotReady,
    headers: Mapping[str, str] | None = None,
    request_timeout_s: float = 2.0,
) -> None:
    """``wait_ready`` for a child that serves HTTP: ready once GET ``url`` answers 200 (no proxy from
    the environment: the child is on 127.0.0.1)."""
    with httpx.Client(timeout=request_timeout_s, trust_env=False, headers=headers) as client:

        def answers() -> bool | None:
            try:
                return True if client.get(url).status_code == 200 else None
            except httpx.TransportError:
                return None

        wait_ready(
            name,
            answers,
            alive=lambda: process.poll() is None,
            timeout_s=timeout_s,
            log_path=log_path,
            waiting_for=url,
            error=error,
        )


def _log_note(log_path: Path | None) -> str:
    return "" if log_path is None else f"; log {log_path}:\n{log_tail(log_path)}"


def wait_gone(
    identity: ProcessIdentity, timeout_s: float, child: subprocess.Popen[Any] | None = None
) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        _reap(identity.pid, child)
        if not is_running(identity):
            # It may have exited between the reap and the check: reap the zombie now.
            _reap(identity.pid, child)
            return True
        time.sleep(POLL_S)
    _reap(identity.pid, child)
    return not is_running(identity)


def signal_group(pid: int, sig: signal.Signals) -> None:
    """Signal the process group ``pid`` leads (what is left of it after the leader went)."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)


def stop(
    identity: ProcessIdentity,
    *,
    ladder: Ladder = TERMINATE,
    whole_group: bool = True,
    child: subprocess.Popen[Any] | None = None,
) -> bool:
    """Stop exactly that process, one rung of ``ladder`` after another until it is gone.

    Returns False when it was already gone (or its PID now belongs to another process, which is
    left alone). ``whole_group`` signals the process group it leads too; ``child`` is its Popen when
    it is ours, reaped through it so the exit status is kept.
    """
    if not is_running(identity):
        _reap(identity.pid, child)
        return False
    for sig, grace in ladder:
        if not is_running(identity):
            break
        with contextlib.suppress(ProcessLookupError, PermissionError):
            if whole_group and os.getpgid(identity.pid) == identity.pid:
                os.killpg(identity.pid, sig)
            else:
                os.kill(identity.pid, sig)
        if wait_gone(identity, grace, child):
            break
    if is_running(identity):
        raise RuntimeError(f"process {identity.pid} survived {ladder[-1][0].name}")
    _reap(identity.pid, child)
    return True


def stop_child(
    child: subprocess.Popen[Any], *, ladder: Ladder = TERMINATE, whole_group: bool = True
) -> int | None:
    """``stop`` for a Popen of ours; returns its exit status."""
    identity = identify(child.pid)
    if identity is not None:
        stop(identity, ladder=ladder, whole_group=whole_group, child=child)
    with contextlib.suppress(subprocess.TimeoutExpired):
        child.wait(timeout=ladder[-1][1])
    return child.returncode


# -- ports ------------------------------------------------------------------------------------


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def port_is_free(port: int) -> bool:
    """Nothing listens on 127.0.0.1:port. SO_REUSEADDR, as every server here sets it, so connections
    lingering in TIME_WAIT after a server stopped do not count as taking the port."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as candidate:
        candidate.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            candidate.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def port_is_listening(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as client:
        client.settimeout(0.5)
        return client.connect_ex(("127.0.0.1", port)) == 0
