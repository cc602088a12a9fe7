"""A Docker daemon for the stack: reuse one that answers, else start ``dockerd`` with paths of our own.

Rules (``docs/local-development.md``, "Docker runtime"): at most one daemon per machine. A daemon
that answers on ``$DOCKER_HOST``, the default socket or the harness's own socket is used as it is
and never stopped by the harness. Only when none answers does the harness start ``dockerd`` with its
own ``--data-root``, ``--exec-root``, ``--pidfile`` and socket under ``/var/tmp/botmox-docker`` (outside
every build context), overlay2 first and vfs when overlay2 does not work here; the caller records
that daemon's identity and stops exactly that process (by PID) when the stack goes down.
"""

from __future__ import annotations

import fcntl
import io
import os
import shutil
import subprocess
import tarfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import docker
from docker.errors import DockerException

from harness import processes
from harness.processes import ProcessIdentity

DEFAULT_SOCKET = "unix:///var/run/docker.sock"
ROOT_VARIABLE = "BOTMOX_DOCKER_ROOT"
# Outside every checkout (never inside a build context) and kept across reboots for the image cache.
DEFAULT_ROOT = Path("/var/tmp/botmox-docker")  # noqa: S108 - a fixed, root-owned location by design
STORAGE_DRIVERS = ("overlay2", "vfs")
START_TIMEOUT_S = 60.0
STOP_GRACE_S = 30.0
POLL_S = 0.2
API_TIMEOUT_S = 600  # image builds stream for minutes on a cold machine


class DaemonUnavailable(RuntimeError):
    """No daemon answers and none could be started."""


@dataclass(frozen=True, slots=True)
class DaemonPaths:
    """Everything a harness-started ``dockerd`` owns, under one root."""

    root: Path

    @classmethod
    def default(cls) -> DaemonPaths:
        return cls(Path(os.environ.get(ROOT_VARIABLE, str(DEFAULT_ROOT))))

    @property
    def socket_url(self) -> str:
        return f"unix://{self.root / 'docker.sock'}"

    @property
    def data_root(self) -> Path:
        return self.root / "data"

    @property
    def exec_root(self) -> Path:
        return self.root / "exec"

    @property
    def pidfile(self) -> Path:
        return self.root / "dockerd.pid"

    @property
    def log_file(self) -> Path:
        return self.root / "dockerd.log"

    @property
    def driver_file(self) -> Path:
        # The storage driver that worked last time, tried first next time (skips a failing overlay2).
        return self.root / "storage-driver"

    def command(self, storage_driver: str) -> list[str]:
        return [
            "dockerd",
            f"--storage-driver={storage_driver}",
            f"--data-root={self.data_root}",
            f"--exec-root={self.exec_root}",
            f"--pidfile={self.pidfile}",
            f"--host={self.socket_url}",
        ]


@dataclass(frozen=True, slots=True)
class Daemon:
    """A daemon that answers; ``started`` is set only when this harness started it."""

    client: docker.DockerClient
    socket_url: str
    started: ProcessIdentity | None
    # The started dockerd's Popen, for a caller that stops it in this very process (``stop(started,
    # child)`` reaps it); without it the dropped Popen warns that dockerd "is still running".
    child: subprocess.Popen[bytes] | None = field(default=None, compare=False, repr=False)


def _candidates(paths: DaemonPaths) -> Iterator[str]:
    seen: set[str] = set()
    for url in (os.environ.get("DOCKER_HOST", ""), DEFAULT_SOCKET, paths.socket_url):
        if url and url not in seen:
            seen.add(url)
            yield url


def connect(url: str) -> docker.DockerClient | None:
    """A client for the daemon at ``url`` when it answers a ping, else ``None``."""
    if url.startswith("unix://") and not Path(url.removeprefix("unix://")).exists():
        return None
    try:
        client = docker.DockerClient(base_url=url, timeout=API_TIMEOUT_S)
    except DockerException:
        return None
    try:
        client.ping()
    except (DockerException, OSError):
        client.close()
        return None
    return client


def find_running(paths: DaemonPaths | None = None) -> Daemon | None:
    """A daemon that already answers (someone else's or a harness one left running), or ``None``."""
    for url in _candidates(paths or DaemonPaths.default()):
        client = connect(url)
        if client is not None:
            return Daemon(client=client, socket_url=url, started=None)
    return None


def can_start() -> bool:
    return shutil.which("dockerd") is not None and os.geteuid() == 0


def obtain(paths: DaemonPaths | None = None) -> Daemon:
    """A daemon that answers: an existing one, else one started here (overlay2, then vfs)."""
    paths = paths or DaemonPaths.default()
    running = find_running(paths)
    if running is not None:
        return running
    if not can_start():
        raise DaemonUnavailable(
            "no Docker daemon answers and dockerd cannot be started (not installed, or not root)"
        )
    paths.root.mkdir(parents=True, exist_ok=True)
    # Two `up`s at once (two checkouts) must not both start a daemon: the second waits, then reuses.
    descriptor = os.open(paths.root / "lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX)
        return find_running(paths) or _start_first_working(paths)
    finally:
        os.close(descriptor)


def _start_first_working(paths: DaemonPaths) -> Daemon:
    errors: list[str] = []
    for driver in _driver_order(paths):
        daemon = _start(paths, driver)
        if isinstance(daemon, Daemon):
            paths.driver_file.write_text(driver + "\n")
            return daemon
        errors.append(f"{driver}: {daemon}")
    raise DaemonUnavailable("dockerd did not start:\n" + "\n".join(errors) + f"\nlog: {paths.log_file}")


def _driver_order(paths: DaemonPaths) -> list[str]:
    try:
        preferred = paths.driver_file.read_text().strip()
    except OSError:
        return list(STORAGE_DRIVERS)
    if preferred not in STORAGE_DRIVERS:
        return list(STORAGE_DRIVERS)
    return [preferred, *(driver for driver in STORAGE_DRIVERS if driver != preferred)]


def _start(paths: DaemonPaths, driver: str) -> Daemon | str:
    """Start dockerd with ``driver``; the daemon, or why it failed (it is stopped again then)."""
    for directory in (paths.root, paths.data_root, paths.exec_root):
        directory.mkdir(parents=True, exist_ok=True)
    socket_path = Path(paths.socket_url.removeprefix("unix://"))
    # A socket left by a daemon that died is in the way; nothing answered on it (checked above).
    socket_path.unlink(missing_ok=True)
    with paths.log_file.open("ab") as log:
        log.write(f"--- harness: starting dockerd with {driver} ---\n".encode())
    identity, child = processes.spawn(
        paths.command(driver),
        environment={"PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")},
        log_path=paths.log_file,
        cwd=paths.root,
    )
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if child.poll() is not None:
            return f"exited with {child.returncode}"
        client = connect(paths.socket_url)
        if client is not None:
            if _driver_works(client):
                return Daemon(client=client, socket_url=paths.socket_url, started=identity, child=child)
            client.close()
            stop(identity)
            return "the storage driver cannot create a layer here"
        time.sleep(POLL_S)
    stop(identity)
    return f"did not answer within {START_TIMEOUT_S:.0f} s"


def _driver_works(client: docker.DockerClient) -> bool:
    """overlay2 may start yet fail at the first layer (overlay on overlay): try one tiny import."""
    if client.info().get("Driver") != "overlay2":
        return True
    try:
        client.api.import_image_from_data(_one_file_tar(), repository=_PROBE_REPOSITORY, tag="probe")
        client.images.remove(f"{_PROBE_REPOSITORY}:probe", force=True)
    except DockerException:
        return False
    return True


_PROBE_REPOSITORY = "botmox-local/driver-probe"


def _one_file_tar() -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        archive.addfile(tarfile.TarInfo("probe"), io.BytesIO(b""))
    return buffer.getvalue()


def stop(identity: ProcessIdentity, child: subprocess.Popen[bytes] | None = None) -> bool:
    """Stop a dockerd this harness started (SIGTERM lets it stop its containers and containerd);
    ``child`` is its Popen when this process started it (``Daemon.child``), reaped through it."""
    stopped = processes.stop(
        identity, ladder=processes.terminate(STOP_GRACE_S), whole_group=False, child=child
    )
    if child is not None:
        # dockerd is multi-threaded: its main thread shows as a zombie (gone, for `stop`) while the
        # other threads still exit, and only then can it be reaped.
        child.wait(timeout=STOP_GRACE_S)
    return stopped


def release_mounts(paths: DaemonPaths) -> list[str]:
    """Unmount what a stopped dockerd leaves under its exec root (its network namespace file), so
    nothing of it stays behind; returns the mount points released."""
    try:
        table = Path("/proc/mounts").read_text()
    except OSError:
        return []
    umount = shutil.which("umount")
    released: list[str] = []
    for line in table.splitlines():
        fields = line.split()
        if len(fields) < 2 or umount is None:
            continue
        mount_point = Path(fields[1])
        if mount_point.is_relative_to(paths.exec_root):
            result = subprocess.run([umount, str(mount_point)], capture_output=True, check=False)  # noqa: S603
            if result.returncode == 0:
                released.append(str(mount_point))
    return released
