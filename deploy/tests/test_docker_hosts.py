"""The test hosts (deploy/tests/hosts.py) end to end: one host boots systemd and sshd, pyinfra reaches
it through ``inventories/test.py`` over SSH exactly as ops would, and nothing is left afterwards.

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
from docker.errors import NotFound

from deploy.tests.hosts import RUN_LABEL, TestHosts
from harness.fixtures.tools import skip_or_fail
from harness.stack.docker import daemon

pytestmark = pytest.mark.integration

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
