"""Docker from Debian (``docker.io``) and docker-compose 1.29 (Debian 12's), plus the systemd unit that
runs each compose project (``botmox-compose@<project>.service``).

docker-compose 1.29 refuses a top-level ``name:``: the unit names the project with ``-p``.
"""

from __future__ import annotations

import json
import shlex
import tarfile
from io import StringIO
from pathlib import Path
from typing import Any, Final

from pyinfra.api.deploy import deploy
from pyinfra.api.exceptions import DeployError
from pyinfra.context import host
from pyinfra.operations import apt, files, server, systemd

from deploy.tasks import layout
from deploy.tasks.facts import DockerImageId
from deploy.tasks.templating import rendered

DOCKER_PACKAGES: Final = ("docker.io", "docker-compose")


def daemon_config(data: Any) -> str:
    """/etc/docker/daemon.json: container logs rotated, containers kept running across a daemon
    restart (``live-restore``); ``docker_storage_driver`` only where the default cannot work."""
    config: dict[str, Any] = {
        "live-restore": True,
        "log-driver": "local",
        "log-opts": {"max-size": "20m", "max-file": "5"},
    }
    if data.get("docker_storage_driver"):
        config["storage-driver"] = data.get("docker_storage_driver")
    return json.dumps(config, indent=2, sort_keys=True) + "\n"


def compose_unit_context() -> dict[str, Any]:
    return {"compose_root": layout.COMPOSE_ROOT, "secrets_file": layout.SECRETS_FILE}


@deploy("Docker and docker-compose")
def docker() -> None:
    """Debian's Docker engine and docker-compose, and the compose project unit template.

    Examples:
        .. code:: python

            from deploy.tasks.docker import docker
            docker()  # data: docker_storage_driver (optional, e.g. "vfs" on a test host)
    """
    apt.packages(name="Install docker.io and docker-compose", packages=list(DOCKER_PACKAGES))
    daemon = files.put(
        name="Docker daemon settings",
        src=StringIO(daemon_config(host.data)),
        dest="/etc/docker/daemon.json",
        mode="644",
    )
    systemd.service(name="Run Docker", service="docker", running=True, enabled=True)
    # live-restore: the containers keep running while the daemon restarts.
    systemd.service(
        name="Restart Docker for its changed settings",
        service="docker",
        restarted=True,
        _if=daemon.did_change,
    )
    files.directory(name="Compose projects' root", path=layout.COMPOSE_ROOT, mode="755")
    unit = files.put(
        name="The unit that runs one compose project",
        src=rendered("systemd/botmox-compose@.service.j2", **compose_unit_context()),
        dest="/etc/systemd/system/botmox-compose@.service",
        mode="644",
    )
    systemd.daemon_reload(name="Reload systemd's units", _if=unit.did_change)


def archive_image_id(archive: Path) -> str:
    """The image id (its config's digest) recorded in a ``docker save`` archive's manifest.json."""
    try:
        with tarfile.open(archive) as tar:
            member = tar.extractfile("manifest.json")
            if member is None:
                raise DeployError(f"{archive} has no manifest.json: not a docker save archive")
            manifest = json.load(member)
    except (OSError, tarfile.TarError, KeyError) as error:
        raise DeployError(f"{archive}: cannot read it as a docker save archive ({error})") from None
    config = str(manifest[0]["Config"])
    digest = config.rsplit("/", 1)[-1].removesuffix(".json")
    return digest if digest.startswith("sha256:") else f"sha256:{digest}"


def image_archives(data: Any, key: str, known: tuple[str, ...]) -> dict[str, str]:
    """Host data ``key`` (component -> local ``docker save`` file), checked against ``known``."""
    archives = {str(k): str(v) for k, v in dict(data.get(key) or {}).items() if v}
    unknown = set(archives) - set(known)
    if unknown:
        raise DeployError(f"{key}: unknown component(s) {sorted(unknown)}; known: {list(known)}")
    return archives


@deploy("Image")
def image(component: str, ref: str, archive: str | None = None) -> None:
    """Make the image ``ref`` present: ``docker load`` of the uploaded ``archive`` (air-gapped hosts;
    uploaded again only when it changed, loaded only when the host lacks that very image id), else
    ``docker pull`` when the host has no such image.

    Examples:
        .. code:: python

            from deploy.tasks.docker import image
            image(component="api", ref="registry.example.org/botmox/api:1.4.0")
            image(component="db", ref="botmox-local/postgres:3f2a", archive="/srv/images/db.tar")
    """
    if archive is None:
        if host.get_fact(DockerImageId, ref=ref) is None:
            server.shell(name=f"Pull {ref}", commands=[f"docker pull {shlex.quote(ref)}"])
        return
    expected = archive_image_id(Path(archive))
    remote = f"{layout.IMAGE_ARCHIVES_DIR}/{component}.tar"
    files.directory(name="Image archives", path=layout.IMAGE_ARCHIVES_DIR, mode="700")
    files.put(name=f"Upload the {component} image archive", src=archive, dest=remote, mode="600")
    if host.get_fact(DockerImageId, ref=ref) != expected:
        server.shell(name=f"Load {ref}", commands=[f"docker load --input {shlex.quote(remote)}"])
