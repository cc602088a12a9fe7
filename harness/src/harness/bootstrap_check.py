"""``make bootstrap-check``: the whole of ``.ci/run`` in a fresh Debian 12 container.

A machine someone has worked on hides a missing install step (a package installed by hand); a fresh
Debian 12 does not. This makes one from the harness's own debootstrap base
(``harness.stack.docker.base``), puts a fresh ``git clone`` of the current commit and a copy of
``../shared`` beside each other in it, as CI does, and runs ``bash .ci/run`` there with ``CI=true``.
The container gets what the harness's own image builds get from the machine: its Debian mirror
(kept in the base's apt sources), its CA bundle (read-only, named by the usual variables) and its
package-index variables when they name a URL.
Nested Docker works with the flags of a server-like test host: every capability but
``SYS_RESOURCE``, no seccomp or AppArmor profile, the host's cgroups, tmpfs on /run; the inner
daemon's root is a directory of the machine's own file system, so overlay2 works inside.

The inner log streams to ``build/bootstrap-check.log``; progress lines (``ci:``, ``bootstrap:``,
make's commands, pytest's summaries) are echoed. The run is bounded (``--timeout``); on failure the
log's tail is printed. Exit code: 0 passed, 1 failed or timed out, 2 could not start.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import subprocess
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

import docker
from docker.errors import DockerException
from docker.models.containers import Container

from harness.postgres.supabase import find_project_root
from harness.stack.docker import base, ca, daemon

DEFAULT_TIMEOUT_S = 3600.0
POLL_S = 5.0
HEARTBEAT_S = 120.0
TAIL_LINES = 60
CONTAINER_ROOT = "/ci"
INNER_DOCKER_ROOT = str(daemon.DEFAULT_ROOT)
LABEL = "org.botmox.bootstrap-check"
# What the harness's image builds are handed as well: a CA bundle for a TLS-inspecting network.
CA_VARIABLES = (
    "SSL_CERT_FILE",
    "REQUESTS_CA_BUNDLE",
    "PIP_CERT",
    "NODE_EXTRA_CA_CERTS",
    "CURL_CA_BUNDLE",
    "GIT_SSL_CAINFO",
)
# Package-index settings of the machine, passed on when they name a URL the container can reach too
# (a file:// index exists only on the machine).
INDEX_VARIABLES = (
    "PIP_INDEX_URL",
    "PIP_EXTRA_INDEX_URL",
    "UV_INDEX_URL",
    "UV_EXTRA_INDEX_URL",
    "UV_DEFAULT_INDEX",
    "UV_INDEX",
    "NPM_CONFIG_REGISTRY",
    "npm_config_registry",
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "NO_PROXY",
    "http_proxy",
    "https_proxy",
    "no_proxy",
)
_PROGRESS = re.compile(r"^(ci: |bootstrap: |\S*uv run |=+ .+ =+$|make: \*\*\*|FAILED |ERROR )")


class CheckError(RuntimeError):
    """The check could not be set up (no daemon, no base image, no clone)."""


@dataclass(frozen=True, slots=True)
class CheckPaths:
    """Where one check keeps its files: a workspace (removed afterwards) and the log (kept)."""

    project_root: Path

    @property
    def build(self) -> Path:
        return self.project_root / "build"

    @property
    def workspace(self) -> Path:
        return self.build / "bootstrap-check"

    @property
    def clone(self) -> Path:
        return self.workspace / "botmox-ops"

    @property
    def shared(self) -> Path:
        return self.workspace / "shared"

    @property
    def inner_docker_root(self) -> Path:
        return self.workspace / "docker-root"

    @property
    def log(self) -> Path:
        return self.build / "bootstrap-check.log"

    @property
    def base_log(self) -> Path:
        return self.build / "bootstrap-check-base.log"


def _git(project_root: Path, *args: str) -> str:
    completed = subprocess.run(  # noqa: S603 - git with our own arguments
        ["git", "-C", str(project_root), *args],  # noqa: S607 - git from PATH, like a teammate runs it
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    if completed.returncode != 0:
        raise CheckError(f"git {' '.join(args)} failed: {completed.stderr.strip()}")
    return completed.stdout.strip()


def find_shared(project_root: Path, given: Path | None = None) -> Path:
    """``../shared`` of the checkout; in a git worktree also ``../shared`` of the main checkout."""
    candidates = [given] if given is not None else [project_root.parent / "shared"]
    if given is None:
        with contextlib.suppress(CheckError):
            common = Path(_git(project_root, "rev-parse", "--path-format=absolute", "--git-common-dir"))
            candidates.append(common.parent.parent / "shared")
    for candidate in candidates:
        if candidate is not None and candidate.is_dir():
            return candidate
    raise CheckError(f"no shared directory at {', '.join(str(c) for c in candidates)} (give --shared)")


def prepare_workspace(paths: CheckPaths, shared: Path, revision: str = "HEAD") -> str:
    """A fresh clone at ``revision`` (the current commit) and a copy of ``shared`` beside it;
    returns the commit."""
    commit = _git(paths.project_root, "rev-parse", "--verify", f"{revision}^{{commit}}")
    shutil.rmtree(paths.workspace, ignore_errors=True)
    paths.workspace.mkdir(parents=True)
    _git(paths.project_root, "clone", "--quiet", "--no-checkout", str(paths.project_root), str(paths.clone))
    _git(paths.clone, "checkout", "--quiet", "--detach", commit)
    shutil.copytree(shared, paths.shared, symlinks=True)
    paths.inner_docker_root.mkdir()
    return commit


def container_environment(bundle: Path | None, machine: Mapping[str, str]) -> dict[str, str]:
    environment = {"CI": "true", "DEBIAN_FRONTEND": "noninteractive"}
    if bundle is not None:
        environment |= dict.fromkeys(CA_VARIABLES, ca.CONTAINER_PATH)
    for name in INDEX_VARIABLES:
        value = machine.get(name, "")
        if value and "file://" not in value:
            environment[name] = value
    return environment


def container_options(paths: CheckPaths, bundle: Path | None) -> dict[str, object]:
    """``docker run`` options of a server-like test host (``--privileged`` is refused here)."""
    volumes: dict[str, dict[str, str]] = {
        str(paths.clone): {"bind": f"{CONTAINER_ROOT}/botmox-ops", "mode": "rw"},
        str(paths.shared): {"bind": f"{CONTAINER_ROOT}/shared", "mode": "rw"},
        str(paths.inner_docker_root): {"bind": INNER_DOCKER_ROOT, "mode": "rw"},
        "/sys/fs/cgroup": {"bind": "/sys/fs/cgroup", "mode": "rw"},
        **ca.container_volumes(bundle),
    }
    return {
        "cap_add": ["ALL"],
        "cap_drop": ["SYS_RESOURCE"],
        "security_opt": ["seccomp=unconfined", "apparmor=unconfined"],
        "cgroupns": "host",
        "tmpfs": {"/run": "", "/run/lock": ""},
        "volumes": volumes,
        "working_dir": f"{CONTAINER_ROOT}/botmox-ops",
        "labels": {LABEL: "1"},
    }


def _base_image(client: docker.DockerClient, daemon_paths: daemon.DaemonPaths, log: Path) -> str:
    with contextlib.suppress(base.BaseImageError):
        base.image_id(client, base.FALLBACK_BASE)
        return base.FALLBACK_BASE
    _say(f"building the Debian 12 base image (debootstrap, log {log})")
    return base.build_fallback(client, daemon_paths, log)


def _say(message: str) -> None:
    print(f"bootstrap-check: {message}", flush=True)


def _minutes(seconds: float) -> str:
    return f"{int(seconds) // 60} min {int(seconds) % 60} s"


class LogPump:
    """Copies the container's output into the log file, echoes progress lines, keeps the tail."""

    def __init__(self, lines: Iterable[bytes], log: Path, echo: Callable[[str], None]) -> None:
        self._lines = lines
        self._log = log
        self._echo = echo
        self.tail: deque[str] = deque(maxlen=TAIL_LINES)
        self._thread = threading.Thread(target=self._run, name="bootstrap-check-log", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def join(self, timeout: float) -> None:
        self._thread.join(timeout)

    def _run(self) -> None:
        pending = b""
        with self._log.open("w") as log:
            for chunk in self._lines:
                pending += chunk
                *complete, pending = pending.split(b"\n")
                for raw in complete:
                    self._line(raw.decode(errors="replace").rstrip("\r"), log)
            if pending:
                self._line(pending.decode(errors="replace"), log)

    def _line(self, line: str, log: TextIO) -> None:
        log.write(line + "\n")
        log.flush()
        self.tail.append(line)
        if _PROGRESS.match(line):
            self._echo(f"  | {line}")


def run_check(
    paths: CheckPaths, shared: Path, timeout_s: float, *, keep: bool, revision: str = "HEAD"
) -> int:
    began = time.monotonic()
    commit = prepare_workspace(paths, shared, revision)
    dirty = _git(paths.project_root, "status", "--porcelain", "--untracked-files=no")
    _say(f"commit {commit[:12]} cloned to {paths.clone}, shared copied from {shared}")
    if dirty:
        _say("note: uncommitted changes in the checkout are not part of the check")
    daemon_paths = daemon.DaemonPaths.default()
    try:
        dockerd = daemon.obtain(daemon_paths)
    except daemon.DaemonUnavailable as error:
        raise CheckError(str(error)) from error
    started = "started for this check" if dockerd.started else "already running, left running"
    _say(f"Docker daemon at {dockerd.socket_url} ({started})")
    container: Container | None = None
    try:
        image = _base_image(dockerd.client, daemon_paths, paths.base_log)
        bundle = ca.host_bundle()
        container = dockerd.client.containers.run(
            image,
            ["bash", ".ci/run"],
            detach=True,
            environment=container_environment(bundle, os.environ),
            **container_options(paths, bundle),
        )
        _say(f"running .ci/run in container {container.short_id} on {image} (timeout {_minutes(timeout_s)})")
        _say(f"log: {paths.log}")
        return _follow(container, paths, began, timeout_s)
    finally:
        if container is not None:
            with contextlib.suppress(DockerException):
                container.remove(force=True, v=True)
        dockerd.client.close()
        if dockerd.started is not None:
            daemon.stop(dockerd.started)
            daemon.release_mounts(daemon_paths)
        if not keep:
            shutil.rmtree(paths.workspace, ignore_errors=True)


def _follow(container: Container, paths: CheckPaths, began: float, timeout_s: float) -> int:
    pump = LogPump(container.logs(stream=True, follow=True), paths.log, print)
    pump.start()
    deadline = began + timeout_s
    next_heartbeat = time.monotonic() + HEARTBEAT_S
    status = "running"
    while time.monotonic() < deadline:
        container.reload()
        status = container.status
        if status not in ("created", "running"):
            break
        if time.monotonic() >= next_heartbeat:
            last = pump.tail[-1][:120] if pump.tail else "(starting)"
            _say(f"{_minutes(time.monotonic() - began)} so far; last line: {last}")
            next_heartbeat += HEARTBEAT_S
        time.sleep(POLL_S)
    elapsed = time.monotonic() - began
    if status in ("created", "running"):
        container.kill()
        pump.join(timeout=30)
        _print_tail(pump)
        _say(f"TIMED OUT after {_minutes(elapsed)} (limit {_minutes(timeout_s)}); log {paths.log}")
        return 1
    exit_code = int(container.wait().get("StatusCode", -1))
    pump.join(timeout=30)
    if exit_code == 0:
        _say(f"PASSED in {_minutes(elapsed)}: .ci/run on a fresh Debian 12; log {paths.log}")
        return 0
    _print_tail(pump)
    _say(f"FAILED (.ci/run exited {exit_code}) after {_minutes(elapsed)}; log {paths.log}")
    return 1


def _print_tail(pump: LogPump) -> None:
    print(f"--- last {len(pump.tail)} lines of the log ---", flush=True)
    for line in pump.tail:
        print(line)
    print("---", flush=True)


def run(shared: Path | None, timeout_s: float, revision: str, *, keep: bool) -> int:
    """``python -m harness bootstrap-check``; returns 0 passed, 1 failed or timed out, 2 could not start."""
    paths = CheckPaths(find_project_root())
    paths.build.mkdir(exist_ok=True)
    try:
        shared_dir = find_shared(paths.project_root, shared)
        return run_check(paths, shared_dir, timeout_s, keep=keep, revision=revision)
    except (CheckError, base.BaseImageError, DockerException) as error:
        _say(f"could not run: {error}")
        return 2
