"""``.harness/state.json``: what ``up`` started and how to reach it (mode 0600: it holds secrets).

It is written as soon as the first process starts and after each later one, so even an ``up`` that
was killed half-way leaves enough behind for ``down`` to stop exactly what it started. A lock file
serialises ``up``, ``down`` and ``flip`` between terminals.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal

from botmox_api.model import DataBackend
from harness.postgres.supabase import find_project_root
from harness.processes import ProcessIdentity, is_running
from harness.stack.values import DATA_BACKENDS

Runtime = Literal["native", "docker"]
# Version 2 keeps the docker runtime's own entries in a nested ``docker`` record; version 1 files
# (flat ``containers``, ``docker_host``, ``docker_daemon``, ``helpers``) are still read.
STATE_VERSION = 2
_READABLE_VERSIONS = (1, STATE_VERSION)
_DOCKER_V1_FIELDS = ("containers", "docker_host", "docker_daemon", "helpers")
HOME_VARIABLE = "BOTMOX_HARNESS_HOME"


class StateError(RuntimeError):
    """The state file cannot be read or does not describe a stack."""


@dataclass(frozen=True, slots=True)
class HarnessPaths:
    """Where a stack keeps its state, logs and data: ``<project>/.harness`` or ``$BOTMOX_HARNESS_HOME``."""

    home: Path

    @classmethod
    def default(cls) -> HarnessPaths:
        override = os.environ.get(HOME_VARIABLE)
        return cls(Path(override).resolve() if override else find_project_root() / ".harness")

    @property
    def state_file(self) -> Path:
        return self.home / "state.json"

    @property
    def lock_file(self) -> Path:
        return self.home / "lock"

    @property
    def logs(self) -> Path:
        return self.home / "logs"

    @property
    def data(self) -> Path:
        return self.home / "data"

    def log_file(self, service: str) -> Path:
        return self.logs / f"{service}.log"

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """Exclusive lock for the duration of a command that changes the stack."""
        self.home.mkdir(parents=True, exist_ok=True)
        descriptor = os.open(self.lock_file, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX)
            yield
        finally:
            os.close(descriptor)  # closing releases the lock


@dataclass(slots=True)
class DockerState:
    """The docker runtime's record: service -> container id (``StackState.processes`` holds each
    container's main process), the daemon's socket, the dockerd the harness started (None when it
    reused one), and helper processes (log followers) it started."""

    host: str
    containers: dict[str, str] = field(default_factory=dict)
    daemon: ProcessIdentity | None = None
    helpers: dict[str, ProcessIdentity] = field(default_factory=dict)

    def to_json(self) -> dict[str, object]:
        return {
            "host": self.host,
            "containers": dict(self.containers),
            "daemon": self.daemon.to_json() if self.daemon else None,
            "helpers": {name: ident.to_json() for name, ident in self.helpers.items()},
        }

    @classmethod
    def from_json(cls, data: dict[str, object]) -> DockerState:
        host, containers = data.get("host"), data.get("containers", {})
        daemon, helpers = data.get("daemon"), data.get("helpers", {})
        if not isinstance(host, str) or not isinstance(containers, dict) or not isinstance(helpers, dict):
            raise StateError("state file: docker needs a host and objects for containers and helpers")
        return cls(
            host=host,
            containers={str(k): str(v) for k, v in containers.items()},
            daemon=ProcessIdentity.from_json(daemon) if isinstance(daemon, dict) else None,
            helpers={str(k): ProcessIdentity.from_json(v) for k, v in helpers.items()},
        )


def _docker_from_v1(fields: dict[str, object]) -> dict[str, object] | None:
    """A version 1 file's flat docker entries as the nested record (None for a native stack)."""
    flat = {name: fields.pop(name, None) for name in _DOCKER_V1_FIELDS}
    if flat["docker_host"] is None:
        return None
    return {
        "host": flat["docker_host"],
        "containers": flat["containers"] or {},
        "daemon": flat["docker_daemon"],
        "helpers": flat["helpers"] or {},
    }


@dataclass(slots=True)
class StackState:
    runtime: Runtime
    data_backend: DataBackend
    api_url: str
    frontend_url: str
    supabase_db_url: str
    supabase_api_db_url: str
    rtdb_url: str
    rtdb_namespace: str
    jwt_secret: str
    jwt_audience: str
    jwt_issuer: str | None
    default_tenant_id: str
    internal_api_token: str
    internal_infra_token: str
    db_api_password: str
    database: str
    ports: dict[str, int]
    project_root: str
    data_dir: str
    # The agent's SyncThing's API key and the agent's vault passphrase (empty in a file of a stack
    # from before the agent joined it).
    syncthing_api_key: str = ""
    agent_vault_passphrase: str = ""
    # The API's uvicorn workers; `flip` starts it again with as many.
    api_workers: int = 1
    # Variables services get on top of the description's, by service (`--api-env`); `flip` keeps them.
    extra_environment: dict[str, dict[str, str]] = field(default_factory=dict)
    postgres_dir: str | None = None
    # The `up` that stays in the foreground (None when detached): `down` elsewhere stops it first.
    supervisor: ProcessIdentity | None = None
    processes: dict[str, ProcessIdentity] = field(default_factory=dict)
    # Only the docker runtime's stacks have one, once it reached a daemon.
    docker: DockerState | None = None
    version: int = STATE_VERSION

    def running_services(self) -> dict[str, ProcessIdentity]:
        return {name: ident for name, ident in self.processes.items() if is_running(ident)}

    def is_alive(self) -> bool:
        """Anything it started still runs (the same processes, not a reused PID)."""
        supervisor_alive = self.supervisor is not None and is_running(self.supervisor)
        return supervisor_alive or bool(self.running_services())

    def to_json(self) -> dict[str, object]:
        data = asdict(self)
        data["supervisor"] = self.supervisor.to_json() if self.supervisor else None
        data["processes"] = {name: ident.to_json() for name, ident in self.processes.items()}
        data["docker"] = self.docker.to_json() if self.docker else None
        return data

    @classmethod
    def from_json(cls, data: dict[str, object]) -> StackState:
        version = data.get("version")
        if version not in _READABLE_VERSIONS:
            raise StateError(
                f"state file version {version!r}, expected one of {', '.join(map(str, _READABLE_VERSIONS))}"
            )
        if data.get("data_backend") not in DATA_BACKENDS:
            raise StateError(f"state file has an unknown data_backend {data.get('data_backend')!r}")
        fields = dict(data)
        docker = _docker_from_v1(fields) if version == 1 else fields.pop("docker", None)
        fields["version"] = STATE_VERSION
        supervisor = fields.pop("supervisor", None)
        processes = fields.pop("processes", {})
        if not isinstance(processes, dict):
            raise StateError("state file: processes must be an object")
        try:
            return cls(
                **fields,  # type: ignore[arg-type]
                supervisor=ProcessIdentity.from_json(supervisor) if isinstance(supervisor, dict) else None,
                processes={str(k): ProcessIdentity.from_json(v) for k, v in processes.items()},
                docker=DockerState.from_json(docker) if isinstance(docker, dict) else None,
            )
        except (TypeError, ValueError) as error:
            raise StateError(f"state file is malformed: {error}") from error


def save(paths: HarnessPaths, state: StackState) -> None:
    """Write atomically with mode 0600 (created so, never widened afterwards)."""
    paths.home.mkdir(parents=True, exist_ok=True)
    temporary = paths.state_file.with_suffix(".json.tmp")
    with contextlib.suppress(FileNotFoundError):
        temporary.unlink()
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        json.dump(state.to_json(), handle, indent=2, sort_keys=True)
        handle.write("\n")
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, paths.state_file)


def load(paths: HarnessPaths) -> StackState | None:
    """The recorded stack, or ``None`` when there is no state file."""
    try:
        raw = paths.state_file.read_text()
    except FileNotFoundError:
        return None
    try:
        data = json.loads(raw)
    except json.JSONDecodeError as error:
        raise StateError(f"{paths.state_file} is not JSON: {error}") from error
    if not isinstance(data, dict):
        raise StateError(f"{paths.state_file} does not hold an object")
    return StackState.from_json(data)


def remove(paths: HarnessPaths) -> None:
    with contextlib.suppress(FileNotFoundError):
        paths.state_file.unlink()
