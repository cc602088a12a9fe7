"""The state file: mode 0600, every documented key, the docker record, and liveness by identity."""

from __future__ import annotations

import dataclasses
import json
import stat
import subprocess
from pathlib import Path

import pytest

from harness import processes
from harness.processes import ProcessIdentity
from harness.stack.console import admin_environment, status_table
from harness.stack.credentials import StackCredentials
from harness.stack.description import STACK
from harness.stack.lifecycle import initial_state, values_of
from harness.stack.state import DockerState, HarnessPaths, StackState, StateError, load, remove, save
from harness.stack.values import StackValues

REQUIRED_KEYS = {
    "api_url",
    "frontend_url",
    "data_backend",
    "runtime",
    "supabase_db_url",
    "rtdb_url",
    "rtdb_namespace",
    "jwt_secret",
    "jwt_audience",
    "jwt_issuer",
    "default_tenant_id",
    "internal_api_token",
    "internal_infra_token",
    "processes",
}


def _values(tmp_path: Path) -> StackValues:
    return StackValues(
        backend="supabase",
        ports={"postgres": 15432, "rtdb": 19000, "api": 18000, "frontend": 15173},
        credentials=StackCredentials.generate(),
        project_root=tmp_path,
        data_dir=tmp_path / "data",
        database="botmox",
    )


def test_state_file_is_private_and_complete(tmp_path: Path) -> None:
    paths = HarnessPaths(tmp_path / ".harness")
    values = _values(tmp_path)
    state = initial_state(values, supervisor=None, runtime="native")
    state.processes["api"] = ProcessIdentity(4242, 17)
    save(paths, state)
    assert stat.S_IMODE(paths.state_file.stat().st_mode) == 0o600
    data = json.loads(paths.state_file.read_text())
    assert set(data) >= REQUIRED_KEYS
    assert data["runtime"] == "native"
    assert data["data_backend"] == "supabase"
    assert data["api_url"] == "http://127.0.0.1:18000"
    assert data["frontend_url"] == "http://127.0.0.1:15173"
    assert data["supabase_db_url"] == "postgresql://postgres@127.0.0.1:15432/botmox?sslmode=disable"
    assert data["rtdb_url"] == "http://127.0.0.1:19000?ns=botmox-local"
    assert data["jwt_issuer"] is None
    assert data["jwt_secret"] == values.credentials.jwt_secret
    assert data["processes"] == {"api": {"pid": 4242, "start_ticks": 17}}
    assert load(paths) == state
    assert values_of(state) == values


def test_saving_again_keeps_the_mode_even_with_a_loose_umask(tmp_path: Path) -> None:
    paths = HarnessPaths(tmp_path)
    state = initial_state(_values(tmp_path), supervisor=None, runtime="native")
    save(paths, state)
    paths.state_file.chmod(0o644)  # someone widened it; the next save replaces the file
    save(paths, state)
    assert stat.S_IMODE(paths.state_file.stat().st_mode) == 0o600


def test_missing_and_malformed_state(tmp_path: Path) -> None:
    paths = HarnessPaths(tmp_path)
    assert load(paths) is None
    paths.state_file.write_text("{not json")
    with pytest.raises(StateError, match="not JSON"):
        load(paths)
    paths.state_file.write_text(json.dumps({"version": 1, "data_backend": "mongo"}))
    with pytest.raises(StateError, match="data_backend"):
        load(paths)
    remove(paths)
    remove(paths)  # idempotent
    assert not paths.state_file.exists()


def test_state_liveness_follows_its_processes(tmp_path: Path, sleeper: subprocess.Popen[bytes]) -> None:
    state = initial_state(_values(tmp_path), supervisor=None, runtime="native")
    assert not state.is_alive()
    identity = processes.identify(sleeper.pid)
    assert identity is not None
    state.processes["rtdb"] = identity
    assert state.is_alive()
    sleeper.kill()
    sleeper.wait(timeout=5)
    assert not state.is_alive()


def _docker_state(tmp_path: Path) -> StackState:
    state = initial_state(_values(tmp_path), supervisor=None, runtime="docker")
    state.processes["api"] = ProcessIdentity(4242, 17)
    state.docker = DockerState(
        host="unix:///run/botmox/docker.sock",
        containers={"api": "c0ffee"},
        daemon=ProcessIdentity(99, 5),
        helpers={"logs-api": ProcessIdentity(4343, 18)},
    )
    return state


def test_docker_entries_are_one_nested_record(tmp_path: Path) -> None:
    paths = HarnessPaths(tmp_path)
    state = _docker_state(tmp_path)
    save(paths, state)
    data = json.loads(paths.state_file.read_text())
    assert data["version"] == 2
    assert data["docker"] == {
        "host": "unix:///run/botmox/docker.sock",
        "containers": {"api": "c0ffee"},
        "daemon": {"pid": 99, "start_ticks": 5},
        "helpers": {"logs-api": {"pid": 4343, "start_ticks": 18}},
    }
    assert not {"containers", "docker_host", "docker_daemon", "helpers"} & set(data)
    assert load(paths) == state
    native = initial_state(_values(tmp_path), supervisor=None, runtime="native")
    save(paths, native)
    assert json.loads(paths.state_file.read_text())["docker"] is None
    assert load(paths) == native


def test_a_version_1_state_file_is_still_read(tmp_path: Path) -> None:
    """A stack started before the docker record was nested can still be stopped."""
    paths = HarnessPaths(tmp_path)
    expected = _docker_state(tmp_path)
    data = expected.to_json()
    docker = data.pop("docker")
    assert isinstance(docker, dict)
    data.update(
        version=1,
        containers=docker["containers"],
        docker_host=docker["host"],
        docker_daemon=docker["daemon"],
        helpers=docker["helpers"],
    )
    paths.state_file.write_text(json.dumps(data))
    assert load(paths) == expected
    native = initial_state(_values(tmp_path), supervisor=None, runtime="native").to_json()
    native.pop("docker")
    native.update(version=1, containers={}, docker_host=None, docker_daemon=None, helpers={})
    paths.state_file.write_text(json.dumps(native))
    loaded = load(paths)
    assert loaded is not None
    assert loaded.docker is None


def test_an_unknown_state_version_is_refused(tmp_path: Path) -> None:
    paths = HarnessPaths(tmp_path)
    data = initial_state(_values(tmp_path), supervisor=None, runtime="native").to_json()
    data["version"] = 3
    paths.state_file.write_text(json.dumps(data))
    with pytest.raises(StateError, match="version 3, expected one of 1, 2"):
        load(paths)


def test_the_api_workers_survive_the_state_file(tmp_path: Path) -> None:
    paths = HarnessPaths(tmp_path / ".harness")
    values = dataclasses.replace(_values(tmp_path), api_workers=3)
    state = initial_state(values, supervisor=None, runtime="native")
    save(paths, state)
    loaded = load(paths)
    assert loaded is not None
    # `flip` starts the API again from these values, with as many workers.
    assert values_of(loaded).with_backend("rtdb").api_workers == 3
    # A state file written before API_WORKERS existed means one worker.
    data = json.loads(paths.state_file.read_text())
    del data["api_workers"]
    paths.state_file.write_text(json.dumps(data))
    older = load(paths)
    assert older is not None
    assert older.api_workers == 1


def test_the_extra_variables_survive_the_state_file(tmp_path: Path) -> None:
    paths = HarnessPaths(tmp_path / ".harness")
    extra = {"api": {"STORAGE_POLICY_SHADOW": "on"}}
    values = dataclasses.replace(_values(tmp_path), extra_environment=extra)
    save(paths, initial_state(values, supervisor=None, runtime="native"))
    loaded = load(paths)
    assert loaded is not None
    assert values_of(loaded).extra_environment == extra
    # A state file written before extra variables existed has none.
    data = json.loads(paths.state_file.read_text())
    del data["extra_environment"]
    paths.state_file.write_text(json.dumps(data))
    older = load(paths)
    assert older is not None
    assert older.extra_environment == {}


def test_a_state_file_from_before_the_agent_is_still_read(tmp_path: Path) -> None:
    """No agent secrets, no syncthing or agent port: read, with empty secrets; `status` shows the
    services that stack has and `stack-env` exports no agent variable."""
    paths = HarnessPaths(tmp_path)
    state = initial_state(_values(tmp_path), supervisor=None, runtime="native")
    data = state.to_json()
    del data["syncthing_api_key"], data["agent_vault_passphrase"]
    paths.state_file.write_text(json.dumps(data))
    loaded = load(paths)
    assert loaded is not None
    assert (loaded.syncthing_api_key, loaded.agent_vault_passphrase) == ("", "")
    table, healthy = status_table(STACK, loaded)
    assert table.row_count == 4
    assert not healthy  # nothing runs
    assert not [name for name in admin_environment(loaded) if name.startswith("BOTMOX_AGENT_")]
