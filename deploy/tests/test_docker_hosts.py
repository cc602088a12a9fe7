"""The test hosts (deploy/tests/hosts.py) end to end: one host boots systemd and sshd, pyinfra reaches
it through ``inventories/test.py`` over SSH exactly as ops would, the literal
``pyinfra inventories/prod deploy/vps.py --dry`` plans a first deploy on it without touching it, and
nothing is left afterwards.

Needs Docker (a daemon that answers, or root and ``dockerd`` to start one); the first run builds the
harness's debootstrap base and the test host image, later runs reuse them.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from pathlib import Path

import pytest
import testinfra  # type: ignore[import-untyped]
from docker.errors import NotFound

from deploy.tests.hosts import RUN_LABEL, TestHosts
from harness.fixtures.tools import skip_or_fail
from harness.stack.docker import daemon

pytestmark = pytest.mark.deploy_hosts

PROJECT_ROOT = Path(__file__).resolve().parents[2]
PYINFRA = Path(sys.executable).parent / "pyinfra"
UP_TIMEOUT_S = 1800  # a cold machine debootstraps the base first


@pytest.mark.timeout(UP_TIMEOUT_S + 120)
def test_pyinfra_reaches_a_test_host_over_ssh_and_the_host_is_gone_after() -> None:
    if daemon.find_running() is None and not daemon.can_start():
        skip_or_fail("no Docker daemon answers and dockerd cannot be started here")
    with TestHosts({"vps-test": "vps"}) as hosts:
        (host,) = hosts.hosts
        workdir = hosts.workdir
        assert host.address.startswith("172.")
        assert (hosts.key_path.stat().st_mode & 0o777) == 0o600
        result = subprocess.run(
            [str(PYINFRA), "-y", "inventories/test.py", "exec", "--", "systemctl", "is-system-running"],
            cwd=PROJECT_ROOT,
            env={**os.environ, **hosts.environment()},
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        assert result.returncode == 0, result.stdout + result.stderr
        assert "[vps-test] running" in result.stdout + result.stderr
        _the_literal_dry_run_plans_on_a_fresh_host_and_touches_nothing(hosts, host.address)
    assert not workdir.exists()
    # Through a daemon again (the run stops the one it started): no container of the run is left.
    after = daemon.obtain()
    try:
        with contextlib.closing(after.client):
            left = after.client.containers.list(all=True, filters={"label": f"{RUN_LABEL}={hosts.run_id}"})
            assert left == []
            with pytest.raises(NotFound):
                after.client.containers.get(host.container_id)
    finally:
        if after.started is not None:
            daemon.stop(after.started, after.child)
            daemon.release_mounts(daemon.DaemonPaths.default())


# The example hosts of inventories/prod.py (documentation addresses, RFC 5737).
EXAMPLE_ADDRESSES = ("192.0.2.10", "192.0.2.20")


def _the_literal_dry_run_plans_on_a_fresh_host_and_touches_nothing(hosts: TestHosts, address: str) -> None:
    """``pyinfra inventories/prod deploy/vps.py --dry``, literally, with the example data: an ssh_config in
    a HOME of its own sends the example addresses to the fresh test host (as a real server's would send
    them to a jump host), the first deploy's root login and keys file as the runbook says."""
    home = hosts.workdir / "home"
    (home / ".ssh").mkdir(parents=True, mode=0o700)
    (home / ".ssh" / "config").write_text(
        "".join(
            f"Host {example}\n  HostName {address}\n  IdentityFile {hosts.key_path}\n"
            "  StrictHostKeyChecking no\n  UserKnownHostsFile /dev/null\n"
            for example in EXAMPLE_ADDRESSES
        )
    )
    keys = hosts.workdir / "ops.keys"
    keys.write_text(
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIExampleExampleExampleExampleExampleExample ops@example\n"
    )
    result = subprocess.run(
        [str(PYINFRA), "inventories/prod", "deploy/vps.py", "--dry"],
        cwd=PROJECT_ROOT,
        env={
            **{k: v for k, v in os.environ.items() if not k.startswith("BOTMOX_")},
            "HOME": str(home),
            "BOTMOX_SSH_USER": "root",
            "BOTMOX_OPS_AUTHORIZED_KEYS_FILE": str(keys),
        },
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        stdin=subprocess.DEVNULL,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    for step in (
        "Install the base packages",
        "Install docker.io and docker-compose",
        "Run Supabase",
        "Pull registry.example.org/botmox/api:2026.12.06",
        "Health gate: slot blue",
        "Install Caddy",
    ):
        assert step in output, step
    # --dry touched nothing: the host is as fresh as it booted.
    fresh = testinfra.get_host(f"paramiko://{address}", ssh_config=str(hosts.ssh_config))
    assert not fresh.file("/etc/botmox").exists
    assert not fresh.file("/etc/caddy").exists
    assert not fresh.package("docker.io").is_installed
    assert not fresh.user("ops").exists
