"""The lifecycle written once for every runtime, driven through a fake runtime (no processes)."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from harness.postgres.supabase import ToolFailed, ToolResult
from harness.processes import ProcessIdentity
from harness.stack import components, lifecycle
from harness.stack.agent_setup import AgentSetupFailed
from harness.stack.components import ProcessComponent
from harness.stack.description import STACK, HealthCheck
from harness.stack.health import ServiceUnhealthy
from harness.stack.lifecycle import StackLifecycle, StackStartError
from harness.stack.state import HarnessPaths, StackState, load
from harness.stack.values import StackValues


class FakeRuntime(StackLifecycle):
    """Launch, stop and alive as a list of events; services "run" while in ``running``."""

    runtime = "native"

    def __init__(self, paths: HarnessPaths, events: list[tuple[str, ...]]) -> None:
        super().__init__(paths, description=STACK, project_root=paths.home)
        self.events = events
        self.running: set[str] = set()
        self._pids = iter(range(1000, 2000))
        # The values each launch got, in order (what the environment is rendered from).
        self.launched: list[StackValues] = []

    def _launch(self, component: ProcessComponent, values: StackValues, state: StackState) -> None:
        name = component.spec.name
        self.events.append(("launch", name, values.backend))
        self.launched.append(values)
        self.running.add(name)
        state.processes[name] = ProcessIdentity(next(self._pids), 1)

    def _alive(self, name: str, state: StackState) -> bool:
        return name in self.running

    def _stop(self, name: str, state: StackState) -> bool:
        self.events.append(("stop", name))
        was_running = name in self.running
        self.running.discard(name)
        return was_running


@pytest.fixture
def failing() -> set[str]:
    """What fails: a service's name (its health check), "migrations", or "supabase" (the API in
    that mode)."""
    return set()


@pytest.fixture
def events(monkeypatch: pytest.MonkeyPatch, failing: set[str]) -> list[tuple[str, ...]]:
    """Health checks and migrations recorded instead of run."""
    recorded: list[tuple[str, ...]] = []

    def wait_healthy(name: str, check: HealthCheck, target: str, *, alive: object, log_path: Path) -> None:
        recorded.append(("healthy", name))
        if name in failing or (name == "api" and "supabase" in failing):
            raise ServiceUnhealthy(f"{name} exited during start-up")

    def migrate(*, port: int, database: str, api_password: str, cli: object) -> ToolResult:
        recorded.append(("migrate", database))
        if "migrations" in failing:
            raise ToolFailed(["supabase", "migration", "up"], 1, "ERROR: syntax error at or near")
        return ToolResult(["supabase"], 0, "Applying migration 0001\n", "")

    def configure_home(home: Path, *, gui_port: int, api_key: str) -> str:
        recorded.append(("syncthing home", home.name))
        return "DEVICE-ID"

    def seed_vault(path: Path, *, passphrase: str, syncthing_api_key: str) -> None:
        recorded.append(("vault", path.name))

    def create_pairing_code(api_url: str, infra_token: str) -> str:
        recorded.append(("pairing code",))
        if "pairing" in failing:
            raise AgentSetupFailed("POST /api/v1/agents/pairings answered 503: SUPABASE_CONFIG_ERROR")
        return "code-of-this-start"

    monkeypatch.setattr(lifecycle, "wait_healthy", wait_healthy)
    monkeypatch.setattr(components, "migrate", migrate)
    monkeypatch.setattr(components, "configure_home", configure_home)
    monkeypatch.setattr(components, "seed_vault", seed_vault)
    monkeypatch.setattr(components, "create_pairing_code", create_pairing_code)
    monkeypatch.setenv("SUPABASE_CLI", "/nonexistent/supabase")  # found, never run (migrate is faked)
    return recorded


def test_up_starts_in_order_each_healthy_then_migrates_after_the_database(
    tmp_path: Path, events: list[tuple[str, ...]]
) -> None:
    runtime = FakeRuntime(HarnessPaths(tmp_path), events)
    state = runtime.up("rtdb")
    assert events == [
        ("launch", "postgres", "rtdb"),
        ("healthy", "postgres"),
        ("migrate", "botmox"),
        ("launch", "rtdb", "rtdb"),
        ("healthy", "rtdb"),
        ("syncthing home", "syncthing"),
        ("launch", "syncthing", "rtdb"),
        ("healthy", "syncthing"),
        ("launch", "api", "rtdb"),
        ("healthy", "api"),
        # Once the API is healthy: the agent's vault and a pairing code, then the agent.
        ("vault", "vault.json"),
        ("pairing code",),
        ("launch", "agent", "rtdb"),
        ("healthy", "agent"),
        ("launch", "frontend", "rtdb"),
        ("healthy", "frontend"),
    ]
    assert load(runtime.paths) == state
    assert set(state.processes) == {"postgres", "rtdb", "syncthing", "api", "agent", "frontend"}
    assert (runtime.paths.data / "agent").is_dir()
    assert (runtime.paths.data / "syncthing").is_dir()
    assert runtime.paths.log_file("migrations").read_text() == "Applying migration 0001\n"


def test_a_service_that_fails_its_check_rolls_back_in_reverse_order(
    tmp_path: Path, events: list[tuple[str, ...]], failing: set[str]
) -> None:
    failing.add("api")
    runtime = FakeRuntime(HarnessPaths(tmp_path), events)
    with pytest.raises(ServiceUnhealthy, match="api exited"):
        runtime.up("rtdb")
    assert events[-4:] == [("stop", "api"), ("stop", "syncthing"), ("stop", "rtdb"), ("stop", "postgres")]
    assert runtime.running == set()
    state = load(runtime.paths)
    assert state is not None  # left for the caller, naming what was stopped
    assert set(state.processes) == {"postgres", "rtdb", "syncthing", "api"}


def test_the_pairing_code_is_a_value_of_the_agent_s_start_only(
    tmp_path: Path, events: list[tuple[str, ...]]
) -> None:
    runtime = FakeRuntime(HarnessPaths(tmp_path), events)
    state = runtime.up("rtdb")
    agent = runtime.launched[[event[1] for event in events if event[0] == "launch"].index("agent")]
    assert agent.start_values == {"pairing_code": "code-of-this-start"}
    assert all(not values.start_values for values in runtime.launched if values is not agent)
    assert "code-of-this-start" not in runtime.paths.state_file.read_text()
    assert state.syncthing_api_key
    assert state.agent_vault_passphrase


def test_a_refused_pairing_code_rolls_back_before_the_agent_starts(
    tmp_path: Path, events: list[tuple[str, ...]], failing: set[str]
) -> None:
    failing.add("pairing")
    runtime = FakeRuntime(HarnessPaths(tmp_path), events)
    with pytest.raises(StackStartError, match=r"agent could not be prepared: .*SUPABASE_CONFIG_ERROR"):
        runtime.up("rtdb")
    assert ("launch", "agent", "rtdb") not in events
    assert events[-5:] == [
        ("pairing code",),
        ("stop", "api"),
        ("stop", "syncthing"),
        ("stop", "rtdb"),
        ("stop", "postgres"),
    ]
    assert runtime.running == set()


def test_a_failed_migration_is_logged_and_rolls_back(
    tmp_path: Path, events: list[tuple[str, ...]], failing: set[str]
) -> None:
    failing.add("migrations")
    runtime = FakeRuntime(HarnessPaths(tmp_path), events)
    with pytest.raises(StackStartError, match=r"(?s)supabase migration up failed.*syntax error"):
        runtime.up("supabase")
    assert events[-1] == ("stop", "postgres")
    assert "syntax error" in runtime.paths.log_file("migrations").read_text()
    assert runtime.running == set()


def test_ctrl_c_during_up_rolls_back_too(
    tmp_path: Path, events: list[tuple[str, ...]], monkeypatch: pytest.MonkeyPatch
) -> None:
    runtime = FakeRuntime(HarnessPaths(tmp_path), events)
    launch = runtime._launch

    def interrupted(component: ProcessComponent, values: StackValues, state: StackState) -> None:
        if component.spec.name == "frontend":
            raise KeyboardInterrupt
        launch(component, values, state)

    monkeypatch.setattr(runtime, "_launch", interrupted)
    with pytest.raises(KeyboardInterrupt):
        runtime.up("rtdb")
    assert events[-5:] == [
        ("stop", "agent"),
        ("stop", "api"),
        ("stop", "syncthing"),
        ("stop", "rtdb"),
        ("stop", "postgres"),
    ]


def test_down_stops_what_the_state_names_in_reverse_order(
    tmp_path: Path, events: list[tuple[str, ...]]
) -> None:
    runtime = FakeRuntime(HarnessPaths(tmp_path), events)
    state = runtime.up("rtdb")
    state.processes["leftover"] = ProcessIdentity(1, 1)  # a service this description no longer has
    runtime.running.discard("rtdb")  # it died on its own
    events.clear()
    assert runtime.down(state) == ["frontend", "agent", "api", "syncthing", "postgres"]
    assert events == [
        ("stop", "leftover"),
        ("stop", "frontend"),
        ("stop", "agent"),
        ("stop", "api"),
        ("stop", "syncthing"),
        ("stop", "rtdb"),
        ("stop", "postgres"),
    ]


def test_flip_restarts_only_the_api(tmp_path: Path, events: list[tuple[str, ...]]) -> None:
    runtime = FakeRuntime(HarnessPaths(tmp_path), events)
    state = runtime.up("rtdb")
    first = state.processes["api"]
    events.clear()
    runtime.flip(state, "supabase")
    assert events == [("stop", "api"), ("launch", "api", "supabase"), ("healthy", "api")]
    assert state.data_backend == "supabase"
    assert state.processes["api"] != first
    assert load(runtime.paths) == state


def test_flip_runs_the_catch_up_while_no_api_runs(tmp_path: Path, events: list[tuple[str, ...]]) -> None:
    runtime = FakeRuntime(HarnessPaths(tmp_path), events)
    state = runtime.up("rtdb")
    events.clear()

    def catch_up() -> None:
        assert "api" not in runtime.running
        events.append(("catch-up",))

    runtime.flip(state, "supabase", while_stopped=catch_up)
    assert events == [("stop", "api"), ("catch-up",), ("launch", "api", "supabase"), ("healthy", "api")]
    assert state.data_backend == "supabase"


def test_a_failed_catch_up_starts_the_api_again_in_its_old_mode(
    tmp_path: Path, events: list[tuple[str, ...]]
) -> None:
    runtime = FakeRuntime(HarnessPaths(tmp_path), events)
    state = runtime.up("rtdb")
    events.clear()

    def catch_up() -> None:
        raise RuntimeError("the backfill skipped 1 tenant")

    with pytest.raises(RuntimeError, match="skipped 1 tenant"):
        runtime.flip(state, "supabase", while_stopped=catch_up)
    assert events == [("stop", "api"), ("launch", "api", "rtdb"), ("healthy", "api")]
    assert state.data_backend == "rtdb"
    assert load(runtime.paths) == state
    assert runtime.running == {"postgres", "rtdb", "syncthing", "api", "agent", "frontend"}


def test_a_failed_flip_starts_the_api_again_in_its_old_mode(
    tmp_path: Path, events: list[tuple[str, ...]], failing: set[str]
) -> None:
    runtime = FakeRuntime(HarnessPaths(tmp_path), events)
    state = runtime.up("rtdb")
    failing.add("supabase")
    events.clear()
    with pytest.raises(ServiceUnhealthy):
        runtime.flip(state, "supabase")
    assert events == [
        ("stop", "api"),
        ("launch", "api", "supabase"),
        ("healthy", "api"),
        ("stop", "api"),
        ("launch", "api", "rtdb"),
        ("healthy", "api"),
    ]
    assert state.data_backend == "rtdb"
    assert runtime.running == {"postgres", "rtdb", "syncthing", "api", "agent", "frontend"}


def test_extra_variables_are_recorded_and_flip_keeps_or_replaces_them(
    tmp_path: Path, events: list[tuple[str, ...]]
) -> None:
    runtime = FakeRuntime(HarnessPaths(tmp_path), events)
    state = runtime.up("rtdb", extra_environment={"api": {"STORAGE_POLICY_SHADOW": "on"}})
    assert runtime.launched[-1].extra_environment == {"api": {"STORAGE_POLICY_SHADOW": "on"}}
    assert state.extra_environment == {"api": {"STORAGE_POLICY_SHADOW": "on"}}

    runtime.flip(state, "supabase")  # kept
    assert runtime.launched[-1].extra_environment == {"api": {"STORAGE_POLICY_SHADOW": "on"}}
    runtime.flip(state, "rtdb", api_environment={"OTHER": "1"})  # replaced
    assert runtime.launched[-1].extra_environment == {"api": {"OTHER": "1"}}
    runtime.flip(state, "rtdb", api_environment={})  # dropped
    assert runtime.launched[-1].extra_environment == {}
    assert state.extra_environment == {}
    assert load(runtime.paths) == state


def test_a_failed_flip_keeps_the_old_extra_variables(
    tmp_path: Path, events: list[tuple[str, ...]], failing: set[str]
) -> None:
    runtime = FakeRuntime(HarnessPaths(tmp_path), events)
    state = runtime.up("rtdb", extra_environment={"api": {"A": "1"}})
    failing.add("supabase")
    with pytest.raises(ServiceUnhealthy):
        runtime.flip(state, "supabase", api_environment={"B": "2"})
    assert runtime.launched[-1].backend == "rtdb"
    assert runtime.launched[-1].extra_environment == {"api": {"A": "1"}}
    assert state.extra_environment == {"api": {"A": "1"}}


def test_a_port_taken_since_it_was_chosen_fails_the_start_clearly(
    tmp_path: Path, events: list[tuple[str, ...]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another stack starting at the same moment takes the API's port after `up` chose it: its API
    would pass this one's health check, so `up` stops instead of launching into a taken port."""
    runtime = FakeRuntime(HarnessPaths(tmp_path), events)
    launch = runtime._launch
    squatter = socket.socket(socket.AF_INET, socket.SOCK_STREAM)

    def rtdb_then_squat(component: ProcessComponent, values: StackValues, state: StackState) -> None:
        launch(component, values, state)
        if component.spec.name == "rtdb":
            squatter.bind(("127.0.0.1", values.ports["api"]))
            squatter.listen()

    monkeypatch.setattr(runtime, "_launch", rtdb_then_squat)
    with squatter, pytest.raises(StackStartError, match=r"port \d+ of api .* is taken now"):
        runtime.up("rtdb")
    assert ("launch", "api", "rtdb") not in events
    assert ("pairing code",) not in events
    assert runtime.running == set()
