"""The base image every Dockerfile starts from (``ARG BASE_IMAGE``).

The Dockerfiles default to the usual public images (``python:3.11-slim-bookworm``, ``postgres:15-bookworm``,
``debian:bookworm-slim``) for people who can pull them. Here no registry answers, so the harness
builds one Debian 12 base itself with ``debootstrap --variant=minbase bookworm`` from the mirror apt
already uses, imports it with ``docker import``, and gives it to every build. The Dockerfiles
install what the slim base lacks (python3, PostgreSQL) with apt, which works on both bases.

Order: the default image when it is already local; the harness's base when it is; a pull of the
default (only while no harness base exists, so a warm ``up`` never waits on a registry); else
debootstrap.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import docker
from docker.errors import APIError, DockerException, ImageNotFound

from harness.stack.docker.daemon import DaemonPaths

FALLBACK_BASE = "botmox-local/debian-base:bookworm"
DEBIAN_SOURCES = Path("/etc/apt/sources.list.d/debian.sources")
DEBIAN_LIST = Path("/etc/apt/sources.list")
PUBLIC_MIRROR = "http://deb.debian.org/debian"
DEBOOTSTRAP_TIMEOUT_S = 900.0


class BaseImageError(RuntimeError):
    """No base image could be pulled or built."""


def debian_mirror(sources: Path = DEBIAN_SOURCES, legacy_list: Path = DEBIAN_LIST) -> str:
    """The Debian mirror apt uses on this machine: the first ``URIs:`` of debian.sources whose
    suites are plain bookworm (not -security), else the first ``deb`` line, else deb.debian.org."""
    try:
        for stanza in sources.read_text().split("\n\n"):
            uris = re.search(r"^URIs:\s*(\S+)", stanza, re.MULTILINE)
            suites = re.search(r"^Suites:\s*(.+)$", stanza, re.MULTILINE)
            if uris and suites and "bookworm" in suites.group(1).split():
                return uris.group(1)
    except OSError:
        pass
    try:
        for line in legacy_list.read_text().splitlines():
            match = re.match(r"deb\s+(?:\[[^\]]*\]\s+)?(\S+)\s+bookworm\s", line)
            if match:
                return match.group(1)
    except OSError:
        pass
    return PUBLIC_MIRROR


def _local_id(client: docker.DockerClient, reference: str) -> str | None:
    try:
        image_id: str = client.images.get(reference).id
    except ImageNotFound:
        return None
    return image_id


def resolve(client: docker.DockerClient, default_image: str) -> str:
    """The base to build on without building anything: a local default or the harness's base; pull
    the default only while the harness has no base of its own. ``""`` when none is available."""
    for reference in (default_image, FALLBACK_BASE):
        if _local_id(client, reference):
            return reference
    try:
        client.images.pull(default_image)
    except (APIError, DockerException):
        return ""
    return default_image


def build_fallback(client: docker.DockerClient, daemon_paths: DaemonPaths, log_path: Path) -> str:
    """debootstrap a minimal bookworm and ``docker import`` it as ``FALLBACK_BASE``."""
    debootstrap = shutil.which("debootstrap")
    tar = shutil.which("tar")
    if debootstrap is None or tar is None:
        raise BaseImageError(
            "no base image can be pulled and debootstrap is missing (apt-get install debootstrap)"
        )
    mirror = debian_mirror()
    daemon_paths.root.mkdir(parents=True, exist_ok=True)
    # Next to the daemon's data root, outside any build context; removed once imported.
    with tempfile.TemporaryDirectory(prefix="debootstrap-", dir=daemon_paths.root) as workdir:
        rootfs = Path(workdir) / "rootfs"
        with log_path.open("ab") as log:
            result = subprocess.run(  # noqa: S603 - fixed tool and arguments
                [debootstrap, "--variant=minbase", "bookworm", str(rootfs), mirror],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                timeout=DEBOOTSTRAP_TIMEOUT_S,
                check=False,
            )
        if result.returncode != 0:
            raise BaseImageError(f"debootstrap from {mirror} failed ({result.returncode}); see {log_path}")
        # Builds run apt-get without a TTY and without recommends, like the slim images.
        (rootfs / "etc/apt/apt.conf.d/90botmox").write_text(
            'APT::Install-Recommends "false";\nAPT::Install-Suggests "false";\n'
        )
        archive = Path(workdir) / "rootfs.tar"
        subprocess.run(  # noqa: S603
            [tar, "-C", str(rootfs), "--numeric-owner", "-cf", str(archive), "."],
            check=True,
            timeout=DEBOOTSTRAP_TIMEOUT_S,
        )
        repository, tag = FALLBACK_BASE.rsplit(":", 1)
        with archive.open("rb") as data:
            client.api.import_image(
                src=data, repository=repository, tag=tag, changes=['CMD ["/bin/bash"]', "ENV LANG=C.UTF-8"]
            )
    return FALLBACK_BASE


def image_id(client: docker.DockerClient, reference: str) -> str:
    found = _local_id(client, reference)
    if found is None:
        raise BaseImageError(f"base image {reference} is not present")
    return found
