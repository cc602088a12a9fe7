"""The servers ``make bench`` measures, each a child process of its own: the API
(``python -m botmox_api``) in one mode, or the floor (``loadtests.reference.floor``); and the RTDB
emulator's latency knob.

A server is pinned to its core from its first instruction (``taskset``), or left on every core;
it is ready when its health path answers 200, and stopped by PID (its process group too, so
uvicorn's workers go with it), also when the bench fails or is interrupted.
"""

from __future__ import annotations

import os
import sys
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import httpx

from harness import processes
from harness.postgres.migrated import PgDatabase
from harness.rtdb.process import RtdbEmulator
from loadtests.bench import proc
from loadtests.reference import floor

ROOT: Final = Path(__file__).resolve().parents[2]
API_READY_PATH: Final = "/api/v1/health/ready"
READY_TIMEOUT_S: Final = 60.0
STOP_LADDER: Final = processes.terminate(10.0)
# The RTDB namespace of the API's database URL (``?ns=``), where the emulator's faults are armed.
RTDB_NAMESPACE: Final = "botmox-bench"
# Every request is a valid user of its own tenant; the limit must never answer 429.
RATE_LIMIT_MAX: Final = "1000000000"


@dataclass(frozen=True, slots=True)
class Server:
    name: str
    url: str
    pid: int
    log_path: Path


def _ready(url: str) -> bool | None:
    try:
        return True if httpx.get(url, timeout=2, trust_env=False).status_code == 200 else None
    except httpx.TransportError:
        return None


@contextmanager
def serve(
    name: str,
    argv: Sequence[str],
    *,
    environment: Mapping[str, str],
    port: int,
    ready_path: str,
    cpus: set[int],
    log_dir: Path,
    cwd: Path,
) -> Iterator[Server]:
    """Start ``argv`` pinned to ``cpus``, wait until ``ready_path`` answers 200, stop it on exit."""
    log_path = log_dir / f"{name}.log"
    log_path.unlink(missing_ok=True)
    identity, child = processes.spawn(
        proc.pinned(argv, cpus), log_path=log_path, environment=environment, cwd=cwd
    )
    try:
        url = f"http://127.0.0.1:{port}"
        processes.wait_ready(
            name,
            lambda: _ready(url + ready_path),
            alive=lambda: child.poll() is None,
            timeout_s=READY_TIMEOUT_S,
            log_path=log_path,
            waiting_for=f"{url}{ready_path} answering 200",
        )
        yield Server(name, url, identity.pid, log_path)
    finally:
        processes.stop_child(child, ladder=STOP_LADDER)


def _clean_environment() -> dict[str, str]:
    # Nothing of the caller's own configuration reaches the servers (a stray SUPABASE_DB_URL, ...).
    prefixes = ("SUPABASE_", "FIREBASE_", "API_", "DATA_BACKEND", "LOG_", "FLOOR_", "STORAGE_POLICY_")
    return {key: value for key, value in os.environ.items() if not key.startswith(prefixes)}


@contextmanager
def api(
    mode: str,
    *,
    database: PgDatabase,
    emulator: RtdbEmulator,
    jwt_secret: str,
    workers: int,
    cpus: set[int],
    log_dir: Path,
    shadow: bool = False,
) -> Iterator[Server]:
    """``python -m botmox_api`` in ``mode``, with its default logging (INFO, JSON, to a log file);
    ``shadow``: with shadow reads on (both backends are configured in either mode)."""
    port = processes.free_port()
    environment = _clean_environment()
    environment.update(
        {
            "HOST": "127.0.0.1",
            "PORT": str(port),
            "DATA_BACKEND": mode,
            "SUPABASE_DB_URL": database.api_dsn,
            "SUPABASE_JWT_SECRET": jwt_secret,
            "FIREBASE_DATABASE_EMULATOR_HOST": emulator.host,
            "FIREBASE_DATABASE_URL": emulator.database_url(RTDB_NAMESPACE),
            "API_RATE_LIMIT_MAX": RATE_LIMIT_MAX,
            "API_WORKERS": str(workers),
            "STORAGE_POLICY_SHADOW": "on" if shadow else "off",
        }
    )
    # An empty working directory: no stray .env is read.
    with (
        tempfile.TemporaryDirectory(prefix="botmox-bench-") as workdir,
        serve(
            f"api-{mode}",
            [sys.executable, "-m", "botmox_api"],
            environment=environment,
            port=port,
            ready_path=API_READY_PATH,
            cpus=cpus,
            log_dir=log_dir,
            cwd=Path(workdir),
        ) as server,
    ):
        yield server


@contextmanager
def floor_app(*, database: PgDatabase, tenants_map: Path, cpus: set[int], log_dir: Path) -> Iterator[Server]:
    """The floor (``loadtests/reference/floor.py``), logging in as the API does."""
    port = processes.free_port()
    environment = _clean_environment()
    environment.update(
        {
            floor.HOST_VARIABLE: "127.0.0.1",
            floor.PORT_VARIABLE: str(port),
            floor.DSN_VARIABLE: database.api_dsn,
            floor.TENANTS_VARIABLE: str(tenants_map),
        }
    )
    with serve(
        "floor",
        [sys.executable, "-m", "loadtests.reference.floor"],
        environment=environment,
        port=port,
        ready_path=floor.HEALTH_PATH,
        cpus=cpus,
        log_dir=log_dir,
        cwd=ROOT,
    ) as server:
        yield server


# --- The emulator's latency knob: POST /.harness/faults?ns=NS {"kind": "latency", "ms": N}.


def _faults_url(emulator: RtdbEmulator) -> str:
    return f"http://{emulator.host}/.harness/faults"


def arm_latency(emulator: RtdbEmulator, ms: int) -> str | None:
    """Make the emulator answer the API's namespace ``ms`` late; the reason when it refuses."""
    try:
        answer = httpx.post(
            _faults_url(emulator),
            params={"ns": RTDB_NAMESPACE},
            json={"kind": "latency", "ms": ms},
            timeout=5,
            trust_env=False,
        )
    except httpx.TransportError as error:
        return f"the emulator did not answer the fault request ({type(error).__name__})"
    if answer.is_success:
        return None
    return f"the emulator refused the fault: HTTP {answer.status_code} {answer.text.strip()[:200]}"


def disarm(emulator: RtdbEmulator) -> None:
    """Disarm every fault of the API's namespace (a no-op when none is armed)."""
    httpx.delete(_faults_url(emulator), params={"ns": RTDB_NAMESPACE}, timeout=5, trust_env=False)
