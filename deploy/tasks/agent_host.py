"""A customer agent host: the ``botmox-agent`` system user, the agent in its own virtual environment
(root-owned, so the agent cannot change its code), its settings, a hardened systemd unit that may
write its state and vault directory only (0700), SyncThing for that user, and pairing with a one-time
code on the first deploy only.

How the agent reaches the host: ``uv build`` makes wheels of ``botmox-agent`` and ``botmox-protocol``
from this workspace and ``uv export`` writes uv.lock's pins of their dependencies, with hashes (the
harness's ``export_arguments``); the deploy uploads both and installs them with
``pip --require-hashes --no-deps``: the host runs exactly the locked versions (it needs PyPI, or a
mirror in ``PIP_INDEX_URL``, for the dependencies). The wheels are built with a fixed
``SOURCE_DATE_EPOCH`` so that the same sources give the same files and a re-run uploads nothing.
"""

from __future__ import annotations

import functools
import os
import shlex
import shutil
import subprocess
from io import StringIO
from pathlib import Path
from typing import Any, Final

from pyinfra.api.deploy import deploy
from pyinfra.api.exceptions import DeployError
from pyinfra.context import host
from pyinfra.facts.files import File
from pyinfra.operations import apt, files, server, systemd
from pyinfra.operations.util import any_changed

from deploy.tasks import layout
from deploy.tasks.secrets import host_secrets
from deploy.tasks.templating import rendered
from harness.stack.docker.images import export_arguments

REPOSITORY: Final = Path(__file__).resolve().parents[2]
AGENT_PACKAGES: Final = ("botmox-protocol", "botmox-agent")
DIST_DIR: Final = REPOSITORY / "build" / "agent-dist"
# Reproducible wheels: hatchling stamps files with this time instead of now.
SOURCE_DATE_EPOCH: Final = "315532800"
PAIRING_CODE_VARIABLE: Final = "BOTMOX_AGENT_PAIRING_CODE"
PAIRING_ENV_FILE: Final = "/run/botmox-agent-pairing.env"
HOST_PACKAGES: Final = ("python3", "python3-venv", "syncthing")
SYNCTHING_UNIT: Final = f"syncthing@{layout.AGENT_USER}.service"


def _uv() -> str:
    """``$UV``, else the project's pinned uv (``make bootstrap``), else ``uv`` on PATH."""
    pinned = REPOSITORY / ".tools" / "bin" / "uv"
    found = os.environ.get("UV") or (str(pinned) if pinned.exists() else shutil.which("uv"))
    if not found:
        raise DeployError("uv is needed to build the agent's wheels: run `make bootstrap`")
    return found


# pyinfra runs the deploy file once per host: build once per run, not once per agent host.
@functools.cache
def build_agent_artifacts(dist: Path = DIST_DIR) -> tuple[list[Path], Path]:
    """Build the wheels and the pinned requirements on the ops machine; (wheels, requirements)."""
    dist.mkdir(parents=True, exist_ok=True)
    environment = {**os.environ, "SOURCE_DATE_EPOCH": SOURCE_DATE_EPOCH}
    for package in AGENT_PACKAGES:
        for stale in dist.glob(f"{package.replace('-', '_')}-*.whl"):
            stale.unlink()
        subprocess.run(  # noqa: S603 - fixed arguments
            [_uv(), "build", "--quiet", "--package", package, "--wheel", "--out-dir", str(dist)],
            cwd=REPOSITORY,
            env=environment,
            check=True,
        )
    requirements = dist / "requirements.txt"
    exported = subprocess.run(  # noqa: S603 - fixed arguments
        [_uv(), *export_arguments("botmox-agent"), "--quiet"],
        cwd=REPOSITORY,
        capture_output=True,
        check=True,
    )
    requirements.write_bytes(exported.stdout)
    wheels = sorted(dist.glob("*.whl"))
    if len(wheels) != len(AGENT_PACKAGES):
        raise DeployError(
            f"expected {len(AGENT_PACKAGES)} wheels in {dist}, found {[w.name for w in wheels]}"
        )
    return wheels, requirements


def agent_context(data: Any, host_name: str) -> dict[str, Any]:
    server_url = data.get("agent_server_url")
    if not server_url:
        raise DeployError("agent_server_url is not set (the control plane's https:// URL)")
    return {
        "user": layout.AGENT_USER,
        "home": layout.AGENT_HOME,
        "state_dir": layout.AGENT_STATE_DIR,
        "venv": layout.AGENT_VENV,
        "env_file": layout.AGENT_ENV_FILE,
        "secrets_file": layout.AGENT_SECRETS_FILE,
        "server_url": server_url,
        "name": data.get("agent_name", host_name),
        "http_address": layout.AGENT_METRICS_ADDRESS,
        "syncthing_url": f"http://{layout.AGENT_SYNCTHING_GUI}",
        "ca_file": f"{layout.AGENT_CONFIG_DIR}/ca.pem" if data.get("agent_ca_file") else "",
    }


def install_command(wheels: list[str], requirements: str) -> str:
    pip = f"{layout.AGENT_VENV}/bin/pip"
    return " && ".join(
        [
            f"{pip} install --quiet --disable-pip-version-check --require-hashes --no-deps "
            f"-r {shlex.quote(requirements)}",
            f"{pip} install --quiet --disable-pip-version-check --no-deps --force-reinstall "
            + " ".join(shlex.quote(w) for w in wheels),
        ]
    )


def pair_command() -> str:
    """Pair once, as the agent's user, with the code from a 0600 file that is removed whatever happens."""
    agent = f"{layout.AGENT_VENV}/bin/botmox-agent"
    return (
        f"trap 'rm -f {PAIRING_ENV_FILE}' EXIT; set -a; . {layout.AGENT_ENV_FILE}; "
        f". {layout.AGENT_SECRETS_FILE}; . {PAIRING_ENV_FILE}; set +a; rm -f {PAIRING_ENV_FILE}; "
        f"runuser -u {layout.AGENT_USER} -- {agent} pair"
    )


@deploy("Customer agent")
def agent_host() -> None:
    """Install, configure, pair (first deploy only) and run the agent.

    Examples:
        .. code:: python

            from deploy.tasks.agent_host import agent_host
            agent_host()  # data: agent_server_url, agent_name, agent_ca_file; env: BOTMOX_AGENT_PAIRING_CODE
    """
    context = agent_context(host.data, host.name)
    apt.packages(name="Python and SyncThing", packages=list(HOST_PACKAGES))
    server.user(  # noqa: S604 - `shell` is the user's login shell, not a shell=True call
        name=f"System user {layout.AGENT_USER}",
        user=layout.AGENT_USER,
        system=True,
        home=layout.AGENT_HOME,
        ensure_home=True,
        shell="/usr/sbin/nologin",
    )
    files.directory(
        name="Agent home (0700)",
        path=layout.AGENT_HOME,
        user=layout.AGENT_USER,
        group=layout.AGENT_USER,
        mode="700",
    )
    files.directory(
        name="State and vault directory (0700)",
        path=layout.AGENT_STATE_DIR,
        user=layout.AGENT_USER,
        group=layout.AGENT_USER,
        mode="700",
    )

    wheels, requirements = build_agent_artifacts()
    files.directory(name="Agent wheels", path=layout.AGENT_WHEELS_DIR, mode="755")
    uploads = [
        files.put(
            name=f"Upload {path.name}",
            src=str(path),
            dest=f"{layout.AGENT_WHEELS_DIR}/{path.name}",
            mode="644",
        )
        for path in [*wheels, requirements]
    ]
    remote_wheels = [f"{layout.AGENT_WHEELS_DIR}/{w.name}" for w in wheels]
    install_commands = [install_command(remote_wheels, f"{layout.AGENT_WHEELS_DIR}/requirements.txt")]
    # Keyed on the agent's own entry point, not the venv's python: an install that failed half-way is
    # done again by the next run, whose uploads are no change.
    if host.get_fact(File, path=f"{layout.AGENT_VENV}/bin/botmox-agent"):
        install = server.shell(
            name="Install the agent (uv.lock's pins, hash-checked)",
            commands=install_commands,
            _if=any_changed(*uploads),
        )
        restart_for = [install]
    else:
        server.shell(
            name="The agent's virtual environment", commands=[f"python3 -m venv {layout.AGENT_VENV}"]
        )
        server.shell(name="Install the agent (uv.lock's pins, hash-checked)", commands=install_commands)
        restart_for = []

    files.directory(
        name="Agent configuration", path=layout.AGENT_CONFIG_DIR, group=layout.AGENT_USER, mode="750"
    )
    host_secrets(path=layout.AGENT_SECRETS_FILE, randoms=["BOTMOX_AGENT_VAULT_PASSPHRASE"])
    changes = [
        files.put(
            name="The agent's settings",
            src=rendered("agent/agent.env.j2", **context),
            dest=layout.AGENT_ENV_FILE,
            group=layout.AGENT_USER,
            mode="640",
        ),
        files.put(
            name="botmox-agent.service (hardened)",
            src=rendered("agent/botmox-agent.service.j2", **context),
            dest="/etc/systemd/system/botmox-agent.service",
            mode="644",
        ),
    ]
    if host.data.get("agent_ca_file"):
        changes.append(
            files.put(
                name="The control plane's CA",
                src=str(host.data.get("agent_ca_file")),
                dest=context["ca_file"],
                mode="644",
            )
        )
    systemd.daemon_reload(name="Reload systemd's units", _if=any_changed(*changes))

    systemd.service(name="SyncThing for the agent's user", service=SYNCTHING_UNIT, running=True, enabled=True)

    if not host.get_fact(File, path=f"{layout.AGENT_STATE_DIR}/identity.json"):
        code = os.environ.get(PAIRING_CODE_VARIABLE, "")
        if not code:
            raise DeployError(
                f"{host.name} is not paired: set {PAIRING_CODE_VARIABLE} to a one-time code "
                "from the control plane"
            )
        files.put(
            name="The one-time pairing code (0600, removed after use)",
            src=StringIO(f"{PAIRING_CODE_VARIABLE}={code}\n"),
            dest=PAIRING_ENV_FILE,
            mode="600",
        )
        server.shell(name="Pair with the control plane (first deploy only)", commands=[pair_command()])

    systemd.service(name="Run the agent", service="botmox-agent", running=True, enabled=True)
    systemd.service(
        name="Restart the agent for its changes",
        service="botmox-agent",
        restarted=True,
        _if=any_changed(*restart_for, *changes),
    )
