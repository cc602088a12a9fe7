"""A second API in ``DATA_BACKEND=supabase`` with no Supabase settings at all, next to a running stack.

``flip`` cannot make this configuration (it keeps the stack's Supabase settings), so the test starts
the API itself: the stack's RTDB emulator, an internal token of its own, and not one ``SUPABASE_*``
variable. A frontend (the native runtime's static server) points the page at it. Both processes are
spawned through ``harness.processes`` and stopped by their identity (PID + start time).
"""

from __future__ import annotations

import contextlib
import os
import secrets
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from harness import processes
from harness.processes import ProcessIdentity, free_port
from harness.stack.description import HealthCheck
from harness.stack.health import wait_healthy
from harness.stack.state import StackState

# The tenant the internal token is served as; apart from the demo tenant the stack's tests use.
TENANT = "misconfigured"
# Liveness, not readiness: readiness is 503 on purpose (Supabase is required in this mode).
_LIVE = HealthCheck("http", path="/api/v1/health/live", timeout_s=60.0)
_PAGE = HealthCheck("http", path="/runtime-config.js", timeout_s=30.0)
# Only what a process needs to run; nothing from the caller's environment can add a SUPABASE_*.
_INHERITED = ("PATH", "HOME", "LANG", "LC_ALL", "TZ", "TMPDIR")


@dataclass(frozen=True)
class MisconfiguredApi:
    api_url: str
    frontend_url: str
    token: str
    tenant: str


def _environment(variables: dict[str, str]) -> dict[str, str]:
    inherited = {name: os.environ[name] for name in _INHERITED if name in os.environ}
    return {**inherited, "PYTHONUNBUFFERED": "1", **variables}


@dataclass(frozen=True)
class _Child:
    identity: ProcessIdentity
    popen: subprocess.Popen[bytes]

    def stop(self) -> None:
        processes.stop(self.identity, child=self.popen)
        self.popen.wait(timeout=10)  # reaped here, so no zombie and no ResourceWarning


def _start(
    name: str, command: list[str], variables: dict[str, str], check: HealthCheck, url: str, workdir: Path
) -> _Child:
    log = workdir / f"{name}.log"
    identity, popen = processes.spawn(command, environment=_environment(variables), log_path=log, cwd=workdir)
    child = _Child(identity, popen)
    try:
        wait_healthy(
            name, check, url + check.path, alive=lambda: processes.is_running(identity), log_path=log
        )
    except BaseException:
        child.stop()
        raise
    return child


@contextlib.contextmanager
def misconfigured_api(state: StackState, workdir: Path) -> Iterator[MisconfiguredApi]:
    """Run the API and a frontend for it until the block ends; ``workdir`` holds no ``.env``."""
    workdir.mkdir(parents=True, exist_ok=True)
    api_port, frontend_port = free_port(), free_port()
    api_url, frontend_url = f"http://127.0.0.1:{api_port}", f"http://127.0.0.1:{frontend_port}"
    token = secrets.token_urlsafe(32)
    rtdb_port = state.ports["rtdb"]
    started: list[_Child] = []
    try:
        api_variables = {
            "APP_ENV": "development",
            "DATA_BACKEND": "supabase",
            "FIREBASE_DATABASE_EMULATOR_HOST": f"127.0.0.1:{rtdb_port}",
            "FIREBASE_DATABASE_URL": state.rtdb_url,
            "DEFAULT_TENANT_ID": TENANT,
            "INTERNAL_API_TOKEN": token,
            "CORS_ORIGINS": frontend_url,
            "HOST": "127.0.0.1",
            "PORT": str(api_port),
            "LOG_FORMAT": "json",
        }
        started.append(
            _start("api", [sys.executable, "-m", "botmox_api"], api_variables, _LIVE, api_url, workdir)
        )
        frontend_variables = {
            "FRONTEND_ROOT": str(Path(state.project_root) / "services" / "frontend" / "public"),
            "API_BASE_URL": api_url,
            "FRONTEND_BIND": "127.0.0.1",
            "FRONTEND_PORT": str(frontend_port),
        }
        command = [sys.executable, "-m", "harness.stack.static_server"]
        started.append(_start("frontend", command, frontend_variables, _PAGE, frontend_url, workdir))
        yield MisconfiguredApi(api_url=api_url, frontend_url=frontend_url, token=token, tenant=TENANT)
    finally:
        for child in reversed(started):
            child.stop()
