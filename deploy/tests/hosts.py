"""Test hosts: containers that behave like the real servers, for deploys over SSH (issue 17, point 5).

Each host is Debian 12 with systemd as PID 1 and sshd, built FROM the harness's own debootstrap base
(``harness.stack.docker.base.FALLBACK_BASE``, built first when missing), and runs on Docker's default
bridge with its own 172.17.x address, with the flags that were checked to work here
(docs: ``environment.md``, "Test hosts that behave like servers"; ``--privileged`` does not work here).

``TestHosts`` is a context manager: it obtains the daemon (``harness.stack.docker.daemon.obtain``),
builds or reuses the image (tagged by a hash of its Dockerfile and the base image's id, like the
harness's service images), generates a per-run ed25519 key in a temporary directory (0600, never in
the checkout), starts the named hosts, installs the public key for root, waits until
``systemctl is-system-running`` says ``running`` and sshd accepts the key, and writes the JSON file
that ``inventories/test.py`` reads through ``BOTMOX_TEST_HOSTS_FILE``. On exit, also after a failure,
it removes its containers (by id, then any left with its run label), the temporary directory, and the
daemon when it started it.

This lives in the deploy's tests, not in the harness package: it needs paramiko, which comes with the
deploy dependency group (pyinfra), and only the deploy tests use it.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import secrets
import shutil
import tarfile
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

import docker
import paramiko
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from docker.errors import APIError, NotFound
from docker.types import Mount

from harness.stack.docker import base, ca, daemon

IMAGE_REPOSITORY = "botmox-local/test-host"
HASH_LABEL = "org.botmox.inputs-hash"
# Every container carries it, valued with its run's id: a run removes exactly its own hosts.
RUN_LABEL = "org.botmox.test-host-run"
HOSTS_FILE_VARIABLE = "BOTMOX_TEST_HOSTS_FILE"
# Where a host keeps this machine's CA bundle, and pip's site-wide configuration naming it.
HOST_CA_PATH = "/etc/botmox-test-host/ca-bundle.pem"
PIP_CONF_PATH = "/etc/pip.conf"
GROUPS = ("vps", "agents")
BOOT_TIMEOUT_S = 120.0
SSH_TIMEOUT_S = 60.0
POLL_S = 0.25
STOP_TIMEOUT_S = 20

# The host keys are made at each host's first boot (ssh-keygen -A before sshd starts), so no two
# hosts share the keys baked into an image. sudo: the ops user of the base deploy uses it.
DOCKERFILE_TEMPLATE = """\
FROM {base_image}
RUN apt-get update \\
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \\
      systemd systemd-sysv openssh-server dbus python3 sudo \\
 && rm -rf /var/lib/apt/lists/* \\
 && rm -f /etc/ssh/ssh_host_* \\
 && mkdir -p /etc/systemd/system/ssh.service.d \\
 && printf '%s\\n' '[Service]' 'ExecStartPre=' \\
      'ExecStartPre=/usr/bin/ssh-keygen -A' 'ExecStartPre=/usr/sbin/sshd -t' \\
      > /etc/systemd/system/ssh.service.d/host-keys.conf
STOPSIGNAL SIGRTMIN+3
CMD ["/sbin/init"]
"""


class TestHostError(RuntimeError):
    """A test host could not be built, started or reached."""


@dataclass(frozen=True, slots=True)
class TestHost:
    __test__ = False  # a class pytest must not collect

    name: str
    group: str
    container_id: str
    address: str


@dataclass(slots=True)
class Timings:
    """Seconds spent on each step of the last ``__enter__`` (0.0 for an image that was reused)."""

    image_build_s: float = 0.0
    boot_s: dict[str, float] = field(default_factory=dict)  # start to systemd `running`
    ssh_ready_s: dict[str, float] = field(default_factory=dict)  # start to the key accepted


def dockerfile(base_image: str) -> str:
    return DOCKERFILE_TEMPLATE.format(base_image=base_image)


def image_tag(base_image: str, base_image_id: str) -> str:
    digest = hashlib.sha256(f"{dockerfile(base_image)}\0{base_image_id}".encode()).hexdigest()
    return f"{IMAGE_REPOSITORY}:{digest[:16]}"


def ensure_image(client: docker.DockerClient, log_path: Path) -> tuple[str, float]:
    """The test host image's tag and the seconds spent building it (0.0 when it was already there)."""
    try:
        base_id = base.image_id(client, base.FALLBACK_BASE)
    except base.BaseImageError:
        base.build_fallback(client, daemon.DaemonPaths.default(), log_path)
        base_id = base.image_id(client, base.FALLBACK_BASE)
    tag = image_tag(base.FALLBACK_BASE, base_id)
    with contextlib.suppress(docker.errors.ImageNotFound):
        client.images.get(tag)
        _remove_older_images(client, tag)
        return tag, 0.0
    started = time.monotonic()
    try:
        # The build's apt reaches the mirror the base was bootstrapped from, as the harness's builds do.
        client.images.build(
            fileobj=io.BytesIO(dockerfile(base.FALLBACK_BASE).encode()),
            tag=tag,
            labels={HASH_LABEL: tag.rsplit(":", 1)[1]},
            network_mode="host",
            rm=True,
            forcerm=True,
        )
    except (APIError, docker.errors.BuildError) as error:
        raise TestHostError(f"cannot build {tag}: {error}") from error
    built_s = time.monotonic() - started
    _remove_older_images(client, tag)
    return tag, built_s


def _remove_older_images(client: docker.DockerClient, tag: str) -> None:
    """Images of an older Dockerfile or base are never used again; one still in use stays."""
    for image in client.images.list(name=IMAGE_REPOSITORY):
        if tag not in image.tags:
            with contextlib.suppress(APIError):
                client.images.remove(image.id, noprune=False)


def write_key(directory: Path) -> tuple[Path, str]:
    """A fresh ed25519 key: the private key's path (0600) and the public key's line."""
    key = Ed25519PrivateKey.generate()
    private = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH, serialization.NoEncryption()
    )
    public = key.public_key().public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
    path = directory / "id_ed25519"
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "wb") as handle:
        handle.write(private)
    return path, public.decode() + " botmox-test-hosts\n"


def trust_archive(bundle: bytes) -> bytes:
    """A tar for ``/`` that makes pip on the host trust ``bundle``: this machine's CA bundle. A machine
    behind a TLS-inspecting proxy reaches PyPI only with it (docs: environment.md), and so do its test
    hosts, whose agent deploy installs the agent's pinned dependencies with pip."""
    buffer = io.BytesIO()
    config = f"[global]\ncert = {HOST_CA_PATH}\n".encode()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        for name, data in ((HOST_CA_PATH, bundle), (PIP_CONF_PATH, config)):
            directory = tarfile.TarInfo(str(Path(name).parent).lstrip("/"))
            directory.type = tarfile.DIRTYPE
            directory.mode = 0o755
            archive.addfile(directory)
            member = tarfile.TarInfo(name.lstrip("/"))
            member.mode = 0o644
            member.size = len(data)
            archive.addfile(member, io.BytesIO(data))
    return buffer.getvalue()


def authorized_keys_archive(public_line: str) -> bytes:
    """A tar of ``.ssh/`` (0700) and ``.ssh/authorized_keys`` (0600), owned by root, for ``/root``."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        directory = tarfile.TarInfo(".ssh")
        directory.type = tarfile.DIRTYPE
        directory.mode = 0o700
        archive.addfile(directory)
        data = public_line.encode()
        keys = tarfile.TarInfo(".ssh/authorized_keys")
        keys.mode = 0o600
        keys.size = len(data)
        archive.addfile(keys, io.BytesIO(data))
    return buffer.getvalue()


def describe(
    hosts: Sequence[TestHost], key_path: Path, host_data: Mapping[str, Mapping[str, object]]
) -> dict[str, list[dict[str, object]]]:
    """The hosts file of ``inventories/test.py``: per group, each host's name, address, root login
    with the run's key, and any extra host data given for it (the inventory's defaults fill the rest)."""
    described: dict[str, list[dict[str, object]]] = {group: [] for group in GROUPS}
    for host in hosts:
        described[host.group].append(
            {
                **host_data.get(host.name, {}),
                "name": host.name,
                "ssh_hostname": host.address,
                "ssh_user": "root",
                "ssh_key": str(key_path),
            }
        )
    return described


class _AcceptNewHostKey(paramiko.MissingHostKeyPolicy):
    """The hosts were started by this run a moment ago and make their keys at first boot."""

    def missing_host_key(self, client: paramiko.SSHClient, hostname: str, key: paramiko.PKey) -> None:
        return None


def ssh_accepts(address: str, key_path: Path, timeout_s: float = 5.0) -> bool:
    """True when sshd at ``address`` lets root in with the key and runs ``true``."""
    client = paramiko.SSHClient()
    client.set_missing_host_key_policy(_AcceptNewHostKey())
    try:
        client.connect(
            address,
            username="root",
            key_filename=str(key_path),
            timeout=timeout_s,
            banner_timeout=timeout_s,
            auth_timeout=timeout_s,
            look_for_keys=False,
            allow_agent=False,
        )
        _, stdout, _ = client.exec_command("true", timeout=timeout_s)
        return stdout.channel.recv_exit_status() == 0
    except (paramiko.SSHException, OSError):
        return False
    finally:
        client.close()


class TestHosts:
    """Named hosts (name -> group: ``vps`` or ``agents``) for one run; see the module's docstring."""

    __test__ = False  # a class pytest must not collect

    def __init__(
        self,
        hosts: Mapping[str, str],
        *,
        host_data: Mapping[str, Mapping[str, object]] | None = None,
        aliases: Mapping[str, Mapping[str, str]] | None = None,
    ):
        """``aliases``: per host, names it resolves (``/etc/hosts``) to an earlier host's address, as a
        site's DNS name resolves to its server (``{"agent-test": {"botmox.test": "vps-test"}}``)."""
        unknown = {group for group in hosts.values() if group not in GROUPS}
        if unknown:
            raise ValueError(f"unknown groups {sorted(unknown)}; known: {GROUPS}")
        order = list(hosts)
        for name, names in (aliases or {}).items():
            for alias, target in names.items():
                if target not in order or name not in order or order.index(target) >= order.index(name):
                    raise ValueError(
                        f"{name}: alias {alias} must name a host started before it, not {target}"
                    )
        self._wanted = dict(hosts)
        self._aliases = {name: dict(names) for name, names in (aliases or {}).items()}
        self._host_data = {name: dict(data) for name, data in (host_data or {}).items()}
        self.run_id = secrets.token_hex(6)
        self.timings = Timings()
        self.hosts: list[TestHost] = []
        self._daemon: daemon.Daemon | None = None
        self._workdir: Path | None = None
        self._container_ids: list[str] = []

    @property
    def workdir(self) -> Path:
        if self._workdir is None:
            raise TestHostError("the test hosts are not up")
        return self._workdir

    @property
    def key_path(self) -> Path:
        return self.workdir / "id_ed25519"

    @property
    def hosts_file(self) -> Path:
        return self.workdir / "hosts.json"

    @property
    def ssh_config(self) -> Path:
        """An ssh_config for the run's hosts (root, the run's key, their fresh host keys accepted):
        ``ssh -F <it> <address>`` by hand, ``testinfra.get_host(..., ssh_config=...)`` in tests."""
        return self.workdir / "ssh_config"

    def environment(self) -> dict[str, str]:
        """What a ``pyinfra inventories/test.py ...`` process needs on top of ``os.environ``."""
        return {HOSTS_FILE_VARIABLE: str(self.hosts_file)}

    def __enter__(self) -> TestHosts:
        try:
            self._up()
        except BaseException:
            self._down()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._down()

    def _up(self) -> None:
        self._daemon = daemon.obtain()
        self._workdir = Path(tempfile.mkdtemp(prefix="botmox-test-hosts-"))
        self._workdir.chmod(0o700)
        client = self._daemon.client
        tag, self.timings.image_build_s = ensure_image(client, self._workdir / "base-image.log")
        key_path, public_line = write_key(self._workdir)
        archive = authorized_keys_archive(public_line)
        bundle = ca.host_bundle()
        trust = trust_archive(bundle.read_bytes()) if bundle is not None else None
        started_at: dict[str, float] = {}
        for name, group in self._wanted.items():
            started_at[name] = time.monotonic()
            addresses = {host.name: host.address for host in self.hosts}
            extra_hosts = {alias: addresses[target] for alias, target in self._aliases.get(name, {}).items()}
            container = self._run(client, tag, name, group, extra_hosts)
            container.put_archive("/root", archive)
            if trust is not None:
                container.put_archive("/", trust)
            container.reload()
            address = str(container.attrs["NetworkSettings"]["IPAddress"])
            if not address:
                raise TestHostError(f"{name}: no address on the default bridge")
            self.hosts.append(TestHost(name, group, str(container.id), address))
        for host in self.hosts:
            self._wait_running(client, host)
            self.timings.boot_s[host.name] = time.monotonic() - started_at[host.name]
            self._wait_ssh(host, key_path)
            self.timings.ssh_ready_s[host.name] = time.monotonic() - started_at[host.name]
        self._write_hosts_file(key_path)
        self.ssh_config.write_text(
            f"Host *\n  User root\n  IdentityFile {key_path}\n  IdentitiesOnly yes\n"
            "  StrictHostKeyChecking no\n  UserKnownHostsFile /dev/null\n  LogLevel ERROR\n"
        )

    def _run(
        self, client: docker.DockerClient, tag: str, name: str, group: str, extra_hosts: dict[str, str]
    ) -> docker.models.containers.Container:
        # The VPS runs Docker itself: its data root is a volume of the outer daemon (removed with the
        # host), a plain directory where the inner dockerd's overlay2 works (not on the image's overlay).
        mounts = [Mount("/var/lib/docker", None, type="volume")] if group == "vps" else []
        try:
            container = client.containers.run(
                tag,
                detach=True,
                name=f"botmox-test-host-{name}-{self.run_id}",
                hostname=name,
                extra_hosts=extra_hosts,
                mounts=mounts,
                labels={RUN_LABEL: self.run_id},
                # environment.md: systemd as PID 1 without --privileged (the sandbox lacks CAP_SYS_RESOURCE).
                cgroupns="host",
                volumes={"/sys/fs/cgroup": {"bind": "/sys/fs/cgroup", "mode": "rw"}},
                tmpfs={"/run": "", "/run/lock": ""},
                cap_add=["ALL"],
                cap_drop=["SYS_RESOURCE"],
                security_opt=["seccomp=unconfined", "apparmor=unconfined"],
            )
        except APIError as error:
            raise TestHostError(f"{name}: cannot start its container: {error}") from error
        self._container_ids.append(str(container.id))
        return container

    @staticmethod
    def _wait_running(client: docker.DockerClient, host: TestHost) -> None:
        container = client.containers.get(host.container_id)
        deadline = time.monotonic() + BOOT_TIMEOUT_S
        state = ""
        while time.monotonic() < deadline:
            # Before dbus is up it answers on stderr ("Failed to connect to bus"): keep waiting.
            state = container.exec_run(["systemctl", "is-system-running"]).output.decode().strip()
            if state == "running":
                return
            if state == "degraded":
                failed = container.exec_run(["systemctl", "--failed", "--no-legend"]).output.decode()
                raise TestHostError(f"{host.name}: systemd is degraded; failed units:\n{failed}")
            time.sleep(POLL_S)
        raise TestHostError(
            f"{host.name}: systemd not running after {BOOT_TIMEOUT_S:.0f} s (last: {state!r})"
        )

    @staticmethod
    def _wait_ssh(host: TestHost, key_path: Path) -> None:
        deadline = time.monotonic() + SSH_TIMEOUT_S
        while time.monotonic() < deadline:
            if ssh_accepts(host.address, key_path):
                return
            time.sleep(POLL_S)
        raise TestHostError(
            f"{host.name}: sshd at {host.address} did not accept the key in {SSH_TIMEOUT_S:.0f} s"
        )

    def add_host_data(self, name: str, data: Mapping[str, object]) -> None:
        """More host data for ``name`` (known only once other hosts are deployed), rewritten to the file."""
        if name not in self._wanted:
            raise ValueError(f"no test host {name!r}")
        self._host_data.setdefault(name, {}).update(data)
        self._write_hosts_file(self.key_path)

    def _write_hosts_file(self, key_path: Path) -> None:
        described = describe(self.hosts, key_path, self._host_data)
        self.hosts_file.write_text(json.dumps(described, indent=2) + "\n")

    def _down(self) -> None:
        running = self._daemon
        try:
            if running is not None:
                self._remove_containers(running.client)
        finally:
            if self._workdir is not None:
                shutil.rmtree(self._workdir, ignore_errors=True)
                self._workdir = None
            self._daemon = None
            if running is not None:
                running.client.close()
                if running.started is not None:
                    daemon.stop(running.started, running.child)
                    daemon.release_mounts(daemon.DaemonPaths.default())

    def _remove_containers(self, client: docker.DockerClient) -> None:
        for container_id in self._container_ids:
            with contextlib.suppress(NotFound):
                container = client.containers.get(container_id)
                with contextlib.suppress(NotFound):
                    container.stop(timeout=STOP_TIMEOUT_S)
                container.remove(force=True, v=True)
        # A container whose id never came back (the run call died mid-way) still carries the label.
        for container in client.containers.list(all=True, filters={"label": f"{RUN_LABEL}={self.run_id}"}):
            with contextlib.suppress(NotFound):
                container.remove(force=True, v=True)
        self._container_ids.clear()
