"""Secrets generated on the host at the first deploy and kept there (never in the repository, never
on the ops machine): ``/usr/local/sbin/botmox-secrets`` (``hostscripts/botmox_secrets.py``) adds what is
missing to a 0600 ``KEY=VALUE`` file and keeps what is there, so a re-run changes nothing.

Supabase's ``anon`` and ``service_role`` keys are minted on the host from ``JWT_SECRET`` by the same
script: the secret never leaves the host. To rotate a secret, delete its line and deploy again
(docs/runbooks/rotate-secrets.md).
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping, Sequence
from typing import Final

from pyinfra.api.deploy import deploy
from pyinfra.context import host
from pyinfra.facts.files import File
from pyinfra.operations import files, server

from deploy.tasks import layout
from deploy.tasks.facts import EnvFileKeys
from deploy.tasks.templating import hostscript

SECRETS_TOOL: Final = f"{layout.SCRIPTS_DIR}/botmox-secrets"

# The control plane's secrets: Supabase's, the API's, the monitoring role's.
CONTROL_PLANE_RANDOM: Final = (
    "POSTGRES_PASSWORD",
    "JWT_SECRET",
    "BOTMOX_DB_API_PASSWORD",
    "INTERNAL_API_TOKEN",
    "INTERNAL_INFRA_TOKEN",
    "MONITOR_DB_PASSWORD",
)
CONTROL_PLANE_JWTS: Final = {"ANON_KEY": "anon", "SERVICE_ROLE_KEY": "service_role"}
# Single values, one a file, for the services that read one (Prometheus' token, the exporter's password).
CONTROL_PLANE_EXPORTS: Final = {
    "INTERNAL_INFRA_TOKEN": f"{layout.SECRETS_DIR}/internal-infra-token",
    "MONITOR_DB_PASSWORD": f"{layout.SECRETS_DIR}/monitor-db-password",
}


def ensure_command(
    path: str, randoms: Sequence[str], jwts: Mapping[str, str], exports: Mapping[str, str]
) -> str:
    """The ``botmox-secrets ensure`` command line (names and paths only, never a value)."""
    parts = [SECRETS_TOOL, "ensure", path]
    for name in randoms:
        parts += ["--random", name]
    for name, role in jwts.items():
        parts += ["--jwt", f"{name}={role}"]
    for name, target in exports.items():
        parts += ["--export", f"{name}={target}"]
    return shlex.join(parts)


@deploy("Host-kept secrets")
def host_secrets(
    path: str,
    randoms: Sequence[str],
    jwts: Mapping[str, str] | None = None,
    exports: Mapping[str, str] | None = None,
) -> None:
    """Make sure ``path`` holds every name (generated on the host the first time, kept afterwards).

    Examples:
        .. code:: python

            from deploy.tasks.secrets import host_secrets
            host_secrets(
                path="/etc/botmox-agent/secrets/agent.env",
                randoms=["BOTMOX_AGENT_VAULT_PASSPHRASE"],
            )
    """
    jwts = dict(jwts or {})
    exports = dict(exports or {})
    files.put(name="The secrets tool", src=hostscript("botmox_secrets.py"), dest=SECRETS_TOOL, mode="755")
    directory = path.rsplit("/", 1)[0]
    files.directory(
        name=f"Secrets directory {directory}", path=directory, user="root", group="root", mode="700"
    )
    names: list[str] = host.get_fact(EnvFileKeys, path=path)
    present = set(names)
    missing = [name for name in (*randoms, *jwts) if name not in present]
    missing_exports = [target for target in exports.values() if not host.get_fact(File, path=target)]
    if missing or missing_exports:
        server.shell(
            name=f"Generate the missing secrets in {path}: {', '.join(missing + missing_exports)}",
            commands=[ensure_command(path, randoms, jwts, exports)],
        )


@deploy("Control plane secrets")
def control_plane_secrets() -> None:
    """The control plane's secrets in ``layout.SECRETS_FILE``.

    Examples:
        .. code:: python

            from deploy.tasks.secrets import control_plane_secrets
            control_plane_secrets()
    """
    host_secrets(
        path=layout.SECRETS_FILE,
        randoms=CONTROL_PLANE_RANDOM,
        jwts=CONTROL_PLANE_JWTS,
        exports=CONTROL_PLANE_EXPORTS,
    )
