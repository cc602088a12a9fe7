"""One service as one container: on the host network, bound to 127.0.0.1, labelled with its stack.

Every image listens on ``$HOST:$PORT`` (the API, the emulator, PostgreSQL's entrypoint and the
frontend's Caddyfile all read those two), so the runtime sets them from the stack's ports next to
the description's own environment. A service with a state directory (``ServiceSpec.state_dir``,
written by the harness on the host) gets it mounted at the same path and runs as the harness's user,
so the paths in its environment and the owners of its files (the agent's vault) hold as they do
natively. The container's main process is recorded like a native
process (``state.processes``), so ``status`` and "is a stack running" work for both runtimes.
"""

from __future__ import annotations

import contextlib
import hashlib
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import docker
from docker.errors import APIError, NotFound
from docker.models.containers import Container

from harness import processes
from harness.processes import ProcessIdentity
from harness.stack.description import ServiceSpec
from harness.stack.values import LOOPBACK

STACK_LABEL = "org.botmox.stack"
SERVICE_LABEL = "org.botmox.service"
STOP_TIMEOUT_S = 20


class ContainerError(RuntimeError):
    """A container could not be created or started."""


def stack_label(home: Path) -> str:
    """Names one stack (one harness home): two checkouts on one daemon never touch each other's containers."""
    return hashlib.sha256(str(home.resolve()).encode()).hexdigest()[:12]


def container_name(service: str, label: str) -> str:
    return f"botmox-{service}-{label}"


@dataclass(frozen=True, slots=True)
class StartedContainer:
    container_id: str
    main_process: ProcessIdentity


def run(
    client: docker.DockerClient,
    spec: ServiceSpec,
    *,
    image_id: str,
    environment: dict[str, str],
    port: int,
    label: str,
    volumes: dict[str, dict[str, str]],
    stop_signal: str,
    user: str | None = None,
) -> StartedContainer:
    name = container_name(spec.name, label)
    _remove_leftover(client, name, label)
    try:
        container: Container = client.containers.run(
            image_id,
            detach=True,
            name=name,
            network_mode="host",
            environment={**environment, "HOST": LOOPBACK, "PORT": str(port)},
            labels={STACK_LABEL: label, SERVICE_LABEL: spec.name},
            volumes=volumes,
            # The component's: PostgreSQL's fast shutdown is SIGINT; the others stop on SIGTERM.
            stop_signal=stop_signal,
            # "uid:gid" of the harness for a service whose state directory is mounted (None: the image's).
            user=user,
        )
    except APIError as error:
        raise ContainerError(f"{spec.name}: cannot start its container: {error}") from error
    container.reload()
    pid = int(container.attrs["State"].get("Pid") or 0)
    identity = processes.identify(pid) if pid else None
    if identity is None:
        logs = container.logs(tail=40).decode(errors="replace")
        raise ContainerError(f"{spec.name}: its container exited at once:\n{logs}")
    return StartedContainer(container_id=str(container.id), main_process=identity)


def _remove_leftover(client: docker.DockerClient, name: str, label: str) -> None:
    """A container of this very stack left by an `up` that was killed; anything else is an error."""
    try:
        old = client.containers.get(name)
    except NotFound:
        return
    if old.labels.get(STACK_LABEL) != label:
        raise ContainerError(f"a container named {name} exists and is not this stack's; remove it by hand")
    old.remove(force=True)


def is_running(client: docker.DockerClient, container_id: str) -> bool:
    try:
        container = client.containers.get(container_id)
    except NotFound:
        return False
    status: str = container.status
    return status in {"created", "running", "restarting"}


def stop_and_remove(client: docker.DockerClient, container_id: str) -> bool:
    """Stop then remove; False when it was already gone."""
    try:
        container = client.containers.get(container_id)
    except NotFound:
        return False
    was_running: bool = container.status == "running"
    with contextlib.suppress(NotFound):
        container.stop(timeout=STOP_TIMEOUT_S)
    with contextlib.suppress(NotFound):
        container.remove(force=True, v=True)
    return was_running


def follow_logs(
    socket_url: str, container_id: str, log_path: Path
) -> tuple[ProcessIdentity, subprocess.Popen[bytes]] | None:
    """``docker logs --follow`` into the service's log file, so `python -m harness logs` works as for
    native processes; it ends by itself when the container is removed. None without a docker CLI."""
    cli = shutil.which("docker")
    if cli is None:
        return None
    return processes.spawn(
        [cli, "--host", socket_url, "logs", "--follow", container_id],
        environment={"PATH": "/usr/local/bin:/usr/bin:/bin"},
        log_path=log_path,
        cwd=log_path.parent,
    )
