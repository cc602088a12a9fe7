"""The process module: identities that survive PID reuse, readiness with a deadline, signal ladders."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from harness import processes
from harness.processes import ProcessIdentity, ProcessNotReady


def test_identity_tells_a_reused_pid_apart(sleeper: subprocess.Popen[bytes]) -> None:
    identity = processes.identify(sleeper.pid)
    assert identity is not None
    assert processes.is_running(identity)
    impostor = ProcessIdentity(sleeper.pid, identity.start_ticks + 1)  # same PID, another start time
    assert not processes.is_running(impostor)
    assert processes.stop(impostor) is False
    assert sleeper.poll() is None  # left alone


def test_stop_ends_the_process_and_its_group(sleeper: subprocess.Popen[bytes]) -> None:
    identity = processes.identify(sleeper.pid)
    assert identity is not None
    assert processes.stop(identity, ladder=processes.terminate(5)) is True
    assert sleeper.wait(timeout=5) is not None
    assert not processes.is_running(identity)
    assert processes.stop(identity) is False


# A child that reports SIGTERM as ignored and exits on SIGINT (as PostgreSQL's fast shutdown does).
_SIGINT_ONLY = """
import signal, sys, time
signal.signal(signal.SIGTERM, signal.SIG_IGN)
signal.signal(signal.SIGINT, lambda *_: sys.exit(7))
print("ready", flush=True)
while True:
    time.sleep(0.05)
"""


def _spawn(tmp_path: Path, code: str) -> tuple[ProcessIdentity, subprocess.Popen[bytes]]:
    return processes.spawn([sys.executable, "-c", code], log_path=tmp_path / "child.log", cwd=tmp_path)


def _wait_for_ready_line(child: subprocess.Popen[bytes], log: Path) -> None:
    def logged() -> bool | None:
        return True if "ready" in log.read_text() else None

    processes.wait_ready("child", logged, alive=lambda: child.poll() is None, timeout_s=10, log_path=log)


def test_spawn_waits_and_stops_with_the_ladder_it_is_given(tmp_path: Path) -> None:
    identity, child = _spawn(tmp_path, _SIGINT_ONLY)
    log = tmp_path / "child.log"
    _wait_for_ready_line(child, log)
    began = time.monotonic()
    ladder = ((signal.SIGINT, 10.0), (signal.SIGKILL, 10.0))
    assert processes.stop(identity, ladder=ladder, whole_group=False, child=child) is True
    assert time.monotonic() - began < 5  # SIGINT did it; no wait for SIGKILL
    assert child.returncode == 7  # reaped through its Popen: the exit status is kept


def test_a_process_that_ignores_the_first_signal_gets_the_next(tmp_path: Path) -> None:
    identity, child = _spawn(tmp_path, _SIGINT_ONLY)
    log = tmp_path / "child.log"
    _wait_for_ready_line(child, log)
    assert processes.stop_child(child, ladder=processes.terminate(0.3)) == -signal.SIGKILL
    assert not processes.is_running(identity)


def test_readiness_error_quotes_the_log_tail_when_the_process_exits(tmp_path: Path) -> None:
    _identity, child = _spawn(tmp_path, "print('no config file, giving up'); raise SystemExit(3)")
    with pytest.raises(ProcessNotReady, match=r"(?s)child exited during start-up.*no config file"):
        processes.wait_ready(
            "child",
            lambda: None,
            alive=lambda: child.poll() is None,
            timeout_s=10,
            log_path=tmp_path / "child.log",
        )
    assert child.wait(timeout=10) == 3


def test_readiness_error_names_the_deadline_and_what_was_awaited(tmp_path: Path) -> None:
    log = tmp_path / "child.log"
    log.write_text("still warming up\n")

    class Late(RuntimeError):
        pass

    with pytest.raises(Late, match=r"(?s)child not ready after 0.2 s \(port 1234\).*still warming up"):
        processes.wait_ready(
            "child",
            lambda: None,
            alive=lambda: True,
            timeout_s=0.2,
            log_path=log,
            waiting_for="port 1234",
            error=Late,
        )
    assert processes.wait_ready("child", lambda: 42, alive=lambda: False, timeout_s=1, log_path=None) == 42


def test_free_ports_are_free(tmp_path: Path) -> None:
    port = processes.free_port()
    assert processes.port_is_free(port)
    assert not processes.port_is_listening(port)
