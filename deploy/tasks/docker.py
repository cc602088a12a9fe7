"""Docker from Debian (``docker.io``) and docker-compose 1.29 (Debian 12's), plus the systemd unit that
runs each compose project (``botmox-compose@<project>.service``).

docker-compose 1.29 refuses a top-level ``name:``: the unit names the project with ``-p``.
"""

from __future__ import annotations

import json
from io import StringIO
from typing import Any, Final

from pyinfra.api.deploy import deploy
from pyinfra.context import host
from pyinfra.operations import apt, files, systemd

from deploy.tasks import layout
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
