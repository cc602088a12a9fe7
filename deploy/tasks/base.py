"""The base of every host: packages, unattended upgrades, time sync, the ops user, SSH hardening and
an nftables firewall that lets in SSH, HTTP and HTTPS only (ICMP kept: IPv6 needs it)."""

from __future__ import annotations

from typing import Any, Final

from pyinfra.api.deploy import deploy
from pyinfra.api.exceptions import DeployError
from pyinfra.context import host
from pyinfra.operations import apt, files, server, systemd

from deploy.tasks.facts import ContainerKind
from deploy.tasks.templating import rendered

BASE_PACKAGES: Final = (
    "ca-certificates",
    "curl",
    "iproute2",  # ss and ip, for ops (and testinfra's socket checks)
    "nftables",
    "openssh-server",
    "python3",
    "sudo",
    "systemd-timesyncd",
    "unattended-upgrades",
)
# The only TCP ports open to the world (the "22, 80 and 443 only").
ALLOWED_TCP_PORTS: Final = (22, 80, 443)
PERMIT_ROOT_LOGIN_VALUES: Final = ("no", "prohibit-password")


def base_context(data: Any) -> dict[str, Any]:
    """Everything the base templates need, from the host's inventory data."""
    ops_user = data.get("ops_user", "ops")
    permit_root_login = data.get("ssh_permit_root_login", "no")
    if permit_root_login not in PERMIT_ROOT_LOGIN_VALUES:
        raise DeployError(f"ssh_permit_root_login must be one of {PERMIT_ROOT_LOGIN_VALUES}")
    allow_users = [ops_user] + (["root"] if permit_root_login != "no" else [])
    return {
        "ops_user": ops_user,
        "permit_root_login": permit_root_login,
        "allow_users": allow_users,
        "allowed_tcp_ports": ALLOWED_TCP_PORTS,
        "automatic_reboot": bool(data.get("unattended_reboot", False)),
        "automatic_reboot_time": data.get("unattended_reboot_time", "04:30"),
    }


@deploy("Base system")
def base() -> None:
    """Packages, unattended upgrades, time sync, the ops user, SSH hardening, the firewall.

    Examples:
        .. code:: python

            from deploy.tasks.base import base
            base()  # data: ops_user, ops_authorized_keys, ssh_permit_root_login
    """
    context = base_context(host.data)
    keys = list(host.data.get("ops_authorized_keys", []))
    if context["permit_root_login"] == "no" and not keys:
        # Without a key for the ops user, turning root login off would lock everyone out.
        raise DeployError(f"{host.name}: ops_authorized_keys is empty and ssh_permit_root_login is 'no'")

    apt.update(name="Refresh apt's lists (at most hourly)", cache_time=3600)
    apt.packages(name="Install the base packages", packages=list(BASE_PACKAGES))

    files.put(
        name="Turn on unattended upgrades",
        src=rendered("base/20auto-upgrades"),
        dest="/etc/apt/apt.conf.d/20auto-upgrades",
        mode="644",
    )
    files.put(
        name="Configure unattended upgrades (security and stable updates)",
        src=rendered("base/52botmox-unattended-upgrades.j2", **context),
        dest="/etc/apt/apt.conf.d/52botmox-unattended-upgrades",
        mode="644",
    )
    # systemd-timesyncd skips itself in a container (ConditionVirtualization), where the host keeps time:
    # asking it to run there would be a change at every run.
    systemd.service(
        name="Keep time with systemd-timesyncd",
        service="systemd-timesyncd",
        running=host.get_fact(ContainerKind) is None,
        enabled=True,
    )

    server.user(  # noqa: S604 - `shell` is the user's login shell, not a shell=True call
        name=f"The ops user {context['ops_user']}",
        user=context["ops_user"],
        shell="/bin/bash",
        home=f"/home/{context['ops_user']}",
        ensure_home=True,
        public_keys=keys,
        delete_keys=True,
    )
    files.put(
        name="The ops user runs sudo without a password (SSH keys are its only way in)",
        src=rendered("base/sudoers.j2", **context),
        dest="/etc/sudoers.d/botmox-ops",
        mode="440",
    )

    sshd = files.put(
        name="Harden sshd (keys only, no forwarding, named users)",
        src=rendered("base/sshd-botmox.conf.j2", **context),
        dest="/etc/ssh/sshd_config.d/50-botmox.conf",
        mode="644",
    )
    server.shell(name="Check sshd's configuration", commands=["sshd -t"], _if=sshd.did_change)
    systemd.service(
        name="Reload sshd", service="ssh", running=True, enabled=True, reloaded=True, _if=sshd.did_change
    )

    firewall = files.put(
        name="The nftables firewall: 22, 80 and 443 in, nothing else",
        src=rendered("base/nftables.conf.j2", **context),
        dest="/etc/nftables.conf",
        mode="755",
    )
    server.shell(
        name="Check the firewall rules", commands=["nft -c -f /etc/nftables.conf"], _if=firewall.did_change
    )
    systemd.service(name="Enable nftables", service="nftables", enabled=True, running=True)
    server.shell(
        name="Load the firewall rules", commands=["nft -f /etc/nftables.conf"], _if=firewall.did_change
    )
