"""Run an RTDB emulator as a child process: ours (always) or the official one (when installed).

Both sit behind ``RtdbEmulatorProcess``: ``start()`` (again on the same port after ``stop()``, which
the API's fault tests rely on), ``stop()`` by PID with SIGTERM then SIGKILL, and a context manager.
"""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path
from types import TracebackType
from typing import Literal, Protocol, Self

from harness import processes

EmulatorKind = Literal["builtin", "official"]
READY_NAMESPACE = "harness-ready-probe"


class EmulatorStartError(RuntimeError):
    """The emulator process exited or did not answer in time."""


class RtdbEmulatorProcess(Protocol):
    @property
    def host(self) -> str:
        """``127.0.0.1:PORT``, the value for ``FIREBASE_DATABASE_EMULATOR_HOST``."""

    @property
    def pid(self) -> int | None: ...

    def database_url(self, namespace: str) -> str: ...

    def start(self) -> None: ...

    def stop(self) -> int | None: ...

    def kill(self) -> int | None: ...

    def __enter__(self) -> Self: ...

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None: ...


class _ChildProcess:
    """A child in its own session, logged to a file, stopped by PID (and its group) only."""

    def __init__(
        self, port: int | None, start_timeout: float, stop_timeout: float, log_dir: Path | None
    ) -> None:
        self._port = port
        self._start_timeout = start_timeout
        self._ladder: processes.Ladder = ((signal.SIGTERM, stop_timeout), (signal.SIGKILL, stop_timeout))
        self._process: subprocess.Popen[bytes] | None = None
        # A log directory we were given is kept; one we made is removed when the process ends
        # (start errors carry the log's tail, so nothing is lost).
        self._given_log_dir = log_dir
        self._log_dir = log_dir or Path(tempfile.gettempdir()) / f"rtdb-emulator-{uuid.uuid4().hex}"
        self.last_exit_code: int | None = None

    @property
    def port(self) -> int:
        if self._port is None:
            self._port = processes.free_port()
        return self._port

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    @property
    def log_path(self) -> Path:
        return self._log_dir / "emulator.log"

    def database_url(self, namespace: str) -> str:
        return f"http://{self.host}?ns={namespace}"

    def _command(self) -> tuple[list[str], Path | None]:
        raise NotImplementedError

    def start(self) -> None:
        if self._process is not None and self._process.poll() is None:
            raise RuntimeError(f"the emulator is already running (pid {self._process.pid})")
        self._log_dir.mkdir(parents=True, exist_ok=True)
        command, cwd = self._command()
        try:
            _identity, self._process = processes.spawn(command, log_path=self.log_path, cwd=cwd)
        except processes.ProcessNotReady as error:
            raise EmulatorStartError(str(error)) from None
        try:
            self._wait_until_ready(self._process)
        except BaseException:
            self.stop()
            raise

    def _wait_until_ready(self, process: subprocess.Popen[bytes]) -> None:
        processes.wait_http_ready(
            "the emulator",
            process,
            f"http://{self.host}/.json?ns={READY_NAMESPACE}&shallow=true",
            timeout_s=self._start_timeout,
            log_path=self.log_path,
            error=EmulatorStartError,
            request_timeout_s=1.0,
        )

    def stop(self) -> int | None:
        """Stops the child: SIGTERM, then SIGKILL after the timeout. Returns its exit status."""
        process, self._process = self._process, None
        if process is None:
            return self.last_exit_code
        processes.stop_child(process, ladder=self._ladder, whole_group=False)
        return self._ended(process)

    def kill(self) -> int | None:
        """Stops the child abruptly (SIGKILL), as a crash would; for durability and fault tests."""
        process, self._process = self._process, None
        if process is None:
            return self.last_exit_code
        processes.stop_child(process, ladder=((signal.SIGKILL, self._ladder[-1][1]),))
        return self._ended(process)

    def _ended(self, process: subprocess.Popen[bytes]) -> int | None:
        self.last_exit_code = process.returncode
        if self._given_log_dir is None:
            shutil.rmtree(self._log_dir, ignore_errors=True)
        return process.returncode

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.stop()


class RtdbEmulator(_ChildProcess):
    """The harness's own emulator: ``python -m harness.rtdb``."""

    def __init__(
        self,
        port: int | None = None,
        snapshot: Path | None = None,
        keepalive_seconds: float = 0.5,
        start_timeout: float = 20.0,
        stop_timeout: float = 10.0,
        log_dir: Path | None = None,
    ) -> None:
        super().__init__(port, start_timeout, stop_timeout, log_dir)
        self.snapshot = snapshot
        self._keepalive = keepalive_seconds

    def _command(self) -> tuple[list[str], Path | None]:
        command = [sys.executable, "-m", "harness.rtdb", "--host", "127.0.0.1", "--port", str(self.port)]
        command += ["--keepalive", str(self._keepalive)]
        if self.snapshot is not None:
            command += ["--snapshot", str(self.snapshot)]
        return command, None


class OfficialRtdbEmulator(_ChildProcess):
    """``firebase emulators:start --only database``; needs the ``firebase`` CLI and Java.

    Untested on these machines (neither can be installed here). A snapshot directory maps to
    ``--import``/``--export-on-exit``, which saves data only on a clean stop, not on every write.
    """

    def __init__(
        self,
        port: int | None = None,
        snapshot_dir: Path | None = None,
        project: str = "demo-botmox",
        start_timeout: float = 60.0,
        stop_timeout: float = 20.0,
        log_dir: Path | None = None,
    ) -> None:
        super().__init__(port, start_timeout, stop_timeout, log_dir)
        self._snapshot_dir = snapshot_dir
        self._project = project

    @staticmethod
    def available() -> bool:
        return shutil.which("firebase") is not None and shutil.which("java") is not None

    def _command(self) -> tuple[list[str], Path | None]:
        firebase = shutil.which("firebase")
        if firebase is None or shutil.which("java") is None:
            raise EmulatorStartError("the official emulator needs the firebase CLI and java on PATH")
        config = {"emulators": {"database": {"host": "127.0.0.1", "port": self.port}}}
        (self._log_dir / "firebase.json").write_text(json.dumps(config))
        command = [firebase, "emulators:start", "--only", "database", "--project", self._project]
        if self._snapshot_dir is not None:
            command += ["--import", str(self._snapshot_dir), "--export-on-exit", str(self._snapshot_dir)]
        return command, self._log_dir

    def stop(self) -> int | None:
        pid = self.pid
        status = super().stop()
        if pid is not None:
            # firebase-tools leaves the Java child behind when only the CLI process is signalled.
            processes.signal_group(pid, signal.SIGKILL)
        return status


def make_emulator(
    kind: EmulatorKind = "builtin", snapshot: Path | None = None, log_dir: Path | None = None
) -> RtdbEmulatorProcess:
    """The emulator of the given kind; ``HARNESS_RTDB_EMULATOR=official`` selects it in fixtures."""
    if kind == "official":
        return OfficialRtdbEmulator(snapshot_dir=snapshot, log_dir=log_dir)
    return RtdbEmulator(snapshot=snapshot, log_dir=log_dir)
