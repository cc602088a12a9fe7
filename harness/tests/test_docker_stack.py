"""``python -m harness up --runtime docker`` end to end: API answers with the printed token, the
storage policy lands in PostgreSQL, the agent (a container with its vault on the mounted state
directory) is paired and online for the demo and infra tokens, and ``down`` leaves no container,
process or port behind.

Slow on a fresh machine (debootstrap and six image builds); later runs reuse the images.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import psycopg
import pytest

from harness import processes
from harness.fixtures.tools import skip_or_fail
from harness.processes import port_is_listening
from harness.stack.docker import daemon
from harness.stack.docker.containers import STACK_LABEL, stack_label
from harness.stack.docker.runtime import DockerRuntime
from harness.stack.state import HOME_VARIABLE, HarnessPaths, StackState, load

pytestmark = pytest.mark.integration

UP_TIMEOUT_S = 1800  # a cold machine builds the base and every image


@pytest.fixture
def paths(tmp_path: Path) -> Iterator[HarnessPaths]:
    if daemon.find_running() is None and not daemon.can_start():
        skip_or_fail("no Docker daemon answers and dockerd cannot be started here")
    paths = HarnessPaths(tmp_path / "harness-home")
    try:
        yield paths
    finally:
        leftover = load(paths)
        if leftover is not None:
            DockerRuntime(paths).down(leftover)


def _harness(paths: HarnessPaths, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "harness", *args],
        env={**os.environ, HOME_VARIABLE: str(paths.home), "COLUMNS": "400"},
        capture_output=True,
        text=True,
        timeout=UP_TIMEOUT_S,
        check=False,
    )


def _printed_token(output: str) -> str:
    lines = output.splitlines()
    for index, line in enumerate(lines):
        if line.startswith("Bearer token for tenant demo"):
            return lines[index + 1].strip()
    raise AssertionError(f"no token in the output:\n{output}")


def _containers_of(paths: HarnessPaths, state: StackState) -> list[str]:
    dockerd = daemon.find_running()
    if dockerd is None:
        return []  # the daemon the harness started is gone, and its containers with it
    with contextlib.closing(dockerd.client):
        found = dockerd.client.containers.list(
            all=True, filters={"label": f"{STACK_LABEL}={stack_label(paths.home)}"}
        )
        return [str(container.name) for container in found]


# A cold `up` (debootstrap plus six image builds) takes minutes: more than pytest's default timeout.
@pytest.mark.timeout(UP_TIMEOUT_S + 120)
def test_up_supabase_then_down_leaves_nothing(paths: HarnessPaths) -> None:
    started = _harness(paths, "up", "--detach", "--backend", "supabase", "--runtime", "docker")
    assert started.returncode == 0, started.stdout + started.stderr
    state = load(paths)
    assert state is not None
    assert state.runtime == "docker"
    assert state.docker is not None
    assert set(state.docker.containers) == {"postgres", "rtdb", "syncthing", "api", "agent", "frontend"}
    assert all(processes.is_running(identity) for identity in state.processes.values())

    token = _printed_token(started.stdout)
    # The agent `up` paired is online for the demo tenant and for the infra token's (the same one).
    for bearer in (token, state.internal_infra_token):
        agents = httpx.get(
            f"{state.api_url}/api/v1/agents",
            headers={"Authorization": f"Bearer {bearer}"},
            timeout=10,
            trust_env=False,
        )
        assert agents.status_code == 200, agents.text
        assert [(agent["name"], agent["online"]) for agent in agents.json()["data"]] == [
            ("local-stack", True)
        ]
    # It reaches its SyncThing's container with the key the harness put in its vault.
    with httpx.Client(
        base_url=state.api_url, headers={"Authorization": f"Bearer {token}"}, timeout=10, trust_env=False
    ) as api:
        agent_id = api.get("/api/v1/agents").json()["data"][0]["id"]
        sent = api.post(f"/api/v1/agents/{agent_id}/commands", json={"kind": "syncthing.status"})
        assert sent.status_code == 201, sent.text
        command_path = f"/api/v1/agents/{agent_id}/commands/{sent.json()['data']['id']}"
        deadline = time.monotonic() + 30
        command = api.get(command_path).json()["data"]
        while command["status"] not in ("succeeded", "failed", "expired") and time.monotonic() < deadline:
            time.sleep(0.2)
            command = api.get(command_path).json()["data"]
    assert command["status"] == "succeeded", command
    assert command["result"]["version"].startswith("v1."), command
    # Its vault is on the host, in the mounted state directory, owned by the harness's user.
    vault = Path(state.data_dir) / "agent" / "vault.json"
    assert vault.stat().st_uid == os.getuid()
    assert vault.stat().st_mode & 0o077 == 0
    headers = {"Authorization": f"Bearer {token}"}
    with httpx.Client(base_url=state.api_url, headers=headers, timeout=10, trust_env=False) as api:
        assert api.get("/api/v1/settings").status_code == 200
        saved = api.put(
            "/api/v1/settings/storage_policy", json={"operational": "local", "sync": {"enabled": True}}
        )
        assert saved.status_code == 200, saved.text
    with psycopg.connect(state.supabase_db_url) as connection:
        row = connection.execute(
            "select operational, sync_enabled from public.storage_policies where tenant_id = 'demo'"
        ).fetchone()
    assert row == ("local", True)
    config = httpx.get(f"{state.frontend_url}/runtime-config.js", timeout=5, trust_env=False)
    assert state.api_url in config.text

    stopped = _harness(paths, "down")
    assert stopped.returncode == 0, stopped.stdout + stopped.stderr
    assert load(paths) is None
    assert _containers_of(paths, state) == []
    assert state.docker is not None
    for name, identity in {**state.processes, **state.docker.helpers}.items():
        assert not processes.is_running(identity), f"{name} (pid {identity.pid}) still runs"
    if state.docker.daemon is not None:
        assert not processes.is_running(state.docker.daemon), "the dockerd the harness started still runs"
    for name, port in state.ports.items():
        assert not port_is_listening(port), f"port {port} of {name} still listens"
