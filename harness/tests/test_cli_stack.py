"""``python -m harness`` end to end on the native runtime: up, status, token, flip, logs, down, Ctrl-C.

Each test gets its own ``BOTMOX_HARNESS_HOME``; a finalizer stops whatever the state file still names,
so a failing test leaves nothing running.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import psycopg
import pytest

from harness import processes
from harness.processes import port_is_listening
from harness.stack.native import NativeRuntime
from harness.stack.state import HOME_VARIABLE, HarnessPaths, StackState, load

pytestmark = pytest.mark.integration

CLI_TIMEOUT_S = 180
READY_TIMEOUT_S = 120.0
# The agent's reconnect backoff tops out at 30 s (with jitter), plus its handshake.
AGENT_RECONNECT_S = 60.0
COMMAND_TIMEOUT_S = 30.0


@dataclass(frozen=True)
class Harness:
    paths: HarnessPaths
    environment: dict[str, str]

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "harness", *args],
            env=self.environment,
            capture_output=True,
            text=True,
            timeout=CLI_TIMEOUT_S,
            check=False,
        )

    def spawn_foreground(self) -> subprocess.Popen[str]:
        return subprocess.Popen(
            [sys.executable, "-m", "harness", "up", "--runtime", "native"],
            env=self.environment,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )

    def state(self) -> StackState:
        state = load(self.paths)
        assert state is not None, "no state file"
        return state


@pytest.fixture
def harness(tmp_path: Path) -> Iterator[Harness]:
    paths = HarnessPaths(tmp_path / "harness-home")
    environment = {**os.environ, HOME_VARIABLE: str(paths.home)}
    try:
        yield Harness(paths, environment)
    finally:
        state = load(paths)
        if state is not None:
            if state.supervisor is not None:
                processes.stop(state.supervisor, ladder=processes.terminate(60))
            leftover = load(paths)
            if leftover is not None:
                NativeRuntime(paths).down(leftover)


def _assert_one_agent_online(state: StackState, token: str) -> None:
    """GET /api/v1/agents with ``token`` lists one agent, online (the one `up` paired)."""
    answer = httpx.get(
        f"{state.api_url}/api/v1/agents",
        headers={"Authorization": f"Bearer {token}"},
        timeout=10,
        trust_env=False,
    )
    assert answer.status_code == 200, answer.text
    agents = answer.json()["data"]
    assert len(agents) == 1, agents
    assert agents[0]["online"] is True, agents
    assert agents[0]["name"] == "local-stack"
    assert agents[0]["revoked_at"] is None


def _assert_the_agent_reads_its_syncthing(state: StackState, token: str) -> None:
    """A `syncthing.status` command through the API answers the stack's SyncThing's device id."""
    headers = {"Authorization": f"Bearer {token}"}
    with httpx.Client(base_url=state.api_url, headers=headers, timeout=10, trust_env=False) as api:
        agent_id = api.get("/api/v1/agents").json()["data"][0]["id"]
        sent = api.post(f"/api/v1/agents/{agent_id}/commands", json={"kind": "syncthing.status"})
        assert sent.status_code == 201, sent.text
        command_path = f"/api/v1/agents/{agent_id}/commands/{sent.json()['data']['id']}"
        deadline = time.monotonic() + COMMAND_TIMEOUT_S
        command = api.get(command_path).json()["data"]
        while command["status"] not in ("succeeded", "failed", "expired") and time.monotonic() < deadline:
            time.sleep(0.2)
            command = api.get(command_path).json()["data"]
    assert command["status"] == "succeeded", command
    syncthing = httpx.get(
        f"http://127.0.0.1:{state.ports['syncthing']}/rest/system/status",
        headers={"X-API-Key": state.syncthing_api_key},
        timeout=10,
        trust_env=False,
    ).json()
    assert command["result"]["device_id"] == syncthing["myID"]


def _wait_agent_online(state: StackState, token: str) -> None:
    deadline = time.monotonic() + AGENT_RECONNECT_S
    while True:
        try:
            _assert_one_agent_online(state, token)
            return
        except AssertionError:
            if time.monotonic() > deadline:
                raise
        time.sleep(0.5)


def _printed_token(output: str) -> str:
    lines = output.splitlines()
    for index, line in enumerate(lines):
        if line.startswith("Bearer token for tenant demo"):
            return lines[index + 1].strip()
    raise AssertionError(f"no token in the output:\n{output}")


def _assert_nothing_left(state: StackState) -> None:
    for name, identity in state.processes.items():
        assert not processes.is_running(identity), f"{name} (pid {identity.pid}) still runs"
    for name, port in state.ports.items():
        if port_is_listening(port):
            sockets = subprocess.run(["ss", "-tanp"], capture_output=True, text=True, check=False).stdout
            raise AssertionError(f"something still listens on port {port} of {name}:\n{sockets}")
    if state.postgres_dir:
        assert not Path(state.postgres_dir).exists()


def _wait_ready(harness: Harness, child: subprocess.Popen[str]) -> StackState:
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        assert child.poll() is None, f"`up` exited early ({child.returncode})"
        state = load(harness.paths)
        if state is not None and "frontend" in state.processes:
            try:
                config = httpx.get(f"{state.frontend_url}/runtime-config.js", timeout=2, trust_env=False)
                if config.is_success:
                    return state
            except httpx.TransportError:
                pass
        time.sleep(0.2)
    raise AssertionError("the foreground stack did not come up")


def _environment_of(state: StackState, service: str) -> dict[str, str]:
    """The environment a service's process was started with (as the kernel keeps it)."""
    raw = Path(f"/proc/{state.processes[service].pid}/environ").read_bytes()
    return dict(entry.split("=", 1) for entry in raw.decode().split("\0") if "=" in entry)


def _api_environment(state: StackState) -> dict[str, str]:
    return _environment_of(state, "api")


def test_up_status_flip_down(harness: Harness) -> None:
    started = harness.run(
        "up", "--detach", "--backend", "rtdb", "--runtime", "native", "--api-env", "HARNESS_EXAMPLE=up"
    )
    assert started.returncode == 0, started.stdout + started.stderr
    assert "extra variables of api: HARNESS_EXAMPLE" in started.stdout
    token = _printed_token(started.stdout)
    state = harness.state()
    assert state.runtime == "native"
    assert state.data_backend == "rtdb"
    assert state.supervisor is None
    assert set(state.processes) == {"postgres", "rtdb", "syncthing", "api", "agent", "frontend"}
    gone = [name for name, identity in state.processes.items() if not processes.is_running(identity)]
    assert not gone, f"not running after up: {gone}\n" + "\n".join(
        harness.run("logs", name, "-n", "15").stdout for name in gone
    )
    assert state.extra_environment == {"api": {"HARNESS_EXAMPLE": "up"}}
    # The agent `up` paired is online for the demo tenant and for the infra token's (the same one).
    _assert_one_agent_online(state, token)
    _assert_one_agent_online(state, state.internal_infra_token)
    # The agent reaches the stack's SyncThing with the key the harness put in its vault.
    _assert_the_agent_reads_its_syncthing(state, token)
    # The pairing code was the agent's start's alone: in its environment, never in the state file.
    code = _environment_of(state, "agent")["BOTMOX_AGENT_PAIRING_CODE"]
    assert code
    assert code not in harness.paths.state_file.read_text()
    assert _api_environment(state)["HARNESS_EXAMPLE"] == "up"

    status = harness.run("status")
    assert status.returncode == 0, status.stdout + status.stderr

    # `stack-env` as a shell evaluates it: the administrator's DSN and the API's RTDB variables.
    shell = subprocess.run(
        ["bash", "-c", f'eval "$({sys.executable} -m harness stack-env)" && env'],
        env=harness.environment,
        capture_output=True,
        text=True,
        timeout=CLI_TIMEOUT_S,
        check=True,
    )
    exported = dict(line.split("=", 1) for line in shell.stdout.splitlines() if "=" in line)
    assert exported["SUPABASE_DB_URL"] == state.supabase_db_url
    assert exported["SUPABASE_DB_URL"].startswith("postgresql://postgres@")
    assert exported["FIREBASE_DATABASE_URL"] == state.rtdb_url
    assert exported["FIREBASE_DATABASE_EMULATOR_HOST"] == f"127.0.0.1:{state.ports['rtdb']}"
    assert exported["DEFAULT_TENANT_ID"] == state.default_tenant_id
    assert exported["APP_ENV"] == "development"
    for name in ("postgres", "rtdb", "syncthing", "api", "agent", "frontend"):
        assert name in status.stdout
    # What the agent's own command line needs to act on the stack's agent.
    assert exported["BOTMOX_AGENT_STATE_DIR"] == f"{state.data_dir}/agent"
    assert "BOTMOX_AGENT_PAIRING_CODE" not in exported
    agent_status = subprocess.run(
        [sys.executable, "-m", "botmox_agent", "status", "--json"],
        env={**harness.environment, **{k: v for k, v in exported.items() if k.startswith("BOTMOX_AGENT_")}},
        capture_output=True,
        text=True,
        timeout=CLI_TIMEOUT_S,
        check=False,
    )
    assert agent_status.returncode == 0, agent_status.stdout + agent_status.stderr

    with httpx.Client(base_url=state.frontend_url, timeout=10, trust_env=False) as frontend:
        assert frontend.get("/").status_code == 200
        config = frontend.get("/runtime-config.js").text
        assert f'"apiBaseUrl": "{state.api_url}"' in config
    preflight = httpx.options(
        f"{state.api_url}/api/v1/settings",
        headers={
            "Origin": state.frontend_url,
            "Access-Control-Request-Method": "PUT",
            "Access-Control-Request-Headers": "authorization,content-type",
        },
        timeout=10,
        trust_env=False,
    )
    assert preflight.headers.get("access-control-allow-origin") == state.frontend_url, preflight.text

    headers = {"Authorization": f"Bearer {token}"}
    with httpx.Client(base_url=state.api_url, headers=headers, timeout=10, trust_env=False) as api:
        settings = api.get("/api/v1/settings")
        assert settings.status_code == 200, settings.text

        # A second `up` refuses and changes nothing.
        before = harness.paths.state_file.read_bytes()
        again = harness.run("up", "--detach")
        assert again.returncode == 3
        assert "already running" in again.stderr
        assert harness.paths.state_file.read_bytes() == before

        flipped = harness.run(
            "flip", "--backend", "supabase", "--api-env", "HARNESS_EXAMPLE", "--api-env", "HARNESS_OTHER=1"
        )
        assert flipped.returncode == 0, flipped.stdout + flipped.stderr
        after = harness.state()
        assert after.data_backend == "supabase"
        # `--api-env NAME` dropped the variable `up` recorded; NAME=VALUE added one.
        assert after.extra_environment == {"api": {"HARNESS_OTHER": "1"}}
        assert "HARNESS_EXAMPLE" not in _api_environment(after)
        assert _api_environment(after)["HARNESS_OTHER"] == "1"
        assert after.processes["api"] != state.processes["api"]
        for store in ("postgres", "rtdb", "syncthing", "agent", "frontend"):
            assert after.processes[store] == state.processes[store]
        # The agent reconnects to the restarted API by itself (its backoff is at most 30 s).
        _wait_agent_online(after, token)
        assert not processes.is_running(state.processes["api"])

        policy = {"operational": "local", "sync": {"enabled": True}}
        saved = api.put("/api/v1/settings/storage_policy", json=policy)
        assert saved.status_code == 200, saved.text
        with psycopg.connect(after.supabase_db_url) as connection:
            row = connection.execute(
                "select operational, sync_enabled from public.storage_policies where tenant_id = 'demo'"
            ).fetchone()
        assert row == ("local", True)

    logs = harness.run("logs", "api", "-n", "5")
    assert logs.returncode == 0
    assert logs.stdout.strip()

    stopped = harness.run("down")
    assert stopped.returncode == 0, stopped.stdout + stopped.stderr
    assert not harness.paths.state_file.exists()
    _assert_nothing_left(after)
    assert harness.run("status").returncode == 3
    assert harness.run("stack-env").returncode == 3


def _read_until_prompt(child: subprocess.Popen[str]) -> str:
    """What `up` printed up to its "Press Ctrl-C" line: only then is the start-up over."""
    assert child.stdout is not None
    seen: list[str] = []
    done = threading.Event()

    def read() -> None:
        assert child.stdout is not None
        for line in child.stdout:
            seen.append(line)
            if "Press Ctrl-C" in line:
                break
        done.set()

    threading.Thread(target=read, daemon=True).start()
    assert done.wait(READY_TIMEOUT_S), "`up` never said it was ready:\n" + "".join(seen)
    return "".join(seen)


def test_foreground_up_stops_everything_on_ctrl_c(harness: Harness) -> None:
    child = harness.spawn_foreground()
    try:
        state = _wait_ready(harness, child)
        assert state.supervisor is not None
        assert state.supervisor.pid == child.pid
        printed = _read_until_prompt(child)
        child.send_signal(signal.SIGINT)
        rest, _ = child.communicate(timeout=90)
        output = printed + rest
    finally:
        if child.poll() is None:
            child.kill()
            child.communicate(timeout=30)
    assert child.returncode == 0, output
    assert "stopped: frontend, agent, api, syncthing, rtdb, postgres" in output
    assert not harness.paths.state_file.exists()
    _assert_nothing_left(state)


def test_down_elsewhere_stops_a_foreground_up(harness: Harness) -> None:
    child = harness.spawn_foreground()
    try:
        state = _wait_ready(harness, child)
        stopped = harness.run("down")
        assert stopped.returncode == 0, stopped.stdout + stopped.stderr
        output, _ = child.communicate(timeout=90)
    finally:
        if child.poll() is None:
            child.kill()
            child.communicate(timeout=30)
    assert child.returncode == 0, output
    _assert_nothing_left(state)


def test_bad_input_and_wrong_state(harness: Harness) -> None:
    assert harness.run("up", "--backend", "mongo").returncode == 2
    assert harness.run("up", "--runtime", "podman").returncode == 2
    assert harness.run("flip").returncode == 2  # --backend is required
    # What the stack sets itself cannot be set twice; checked before anything starts.
    clash = harness.run("up", "--detach", "--runtime", "native", "--api-env", "DATA_BACKEND=supabase")
    assert clash.returncode == 2
    assert "DATA_BACKEND of api is set by the stack itself" in clash.stderr
    assert harness.run("up", "--detach", "--runtime", "native", "--api-env", "NO_VALUE").returncode == 2
    status = harness.run("status")
    assert status.returncode == 3
    assert "no stack is running" in status.stderr
    assert harness.run("flip", "--backend", "supabase").returncode == 3
    assert harness.run("token").returncode == 3
    down = harness.run("down")
    assert down.returncode == 0
    assert "no stack is running" in down.stdout
    unknown = harness.run("logs", "nosuch")
    assert unknown.returncode == 2
    assert "unknown service" in unknown.stderr
    assert not harness.paths.state_file.exists()
