"""The state file (mode 0600, every documented key) and process identities that survive PID reuse."""

from __future__ import annotations

import json
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness import processes
from harness.processes import ProcessIdentity
from harness.stack.credentials import StackCredentials
from harness.stack.lifecycle import initial_state, values_of
from harness.stack.state import HarnessPaths, StateError, load, remove, save
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


@pytest.fixture
def sleeper() -> Iterator[subprocess.Popen[bytes]]:
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"], start_new_session=True)
    try:
        yield child
    finally:
        child.kill()
        child.wait(timeout=10)


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


def test_identity_tells_a_reused_pid_apart(sleeper: subprocess.Popen[bytes]) -> None:
    identity = processes.identify(sleeper.pid)
    assert identity is not None
    assert processes.is_running(identity)
    impostor = ProcessIdentity(sleeper.pid, identity.start_ticks + 1)  # same PID, another start time
    assert not processes.is_running(impostor)
    assert processes.stop(impostor) is False
    assert sleeper.poll() is None  # left alone


def test_stop_ends_the_process_and_its_group(sleeper: subprocess.Popen[bytes]) -> None:
    identity = processes.identify(sleeper.pid)
    assert identity is not None
    assert processes.stop(identity, ladder=processes.terminate(5)) is True
    assert sleeper.wait(timeout=5) is not None
    assert not processes.is_running(identity)
    assert processes.stop(identity) is False


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
