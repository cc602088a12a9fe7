"""The docker runtime's launch of one service, with the daemon faked: what a container gets.

A service with a state directory (the agent: its vault; SyncThing: its home) gets it bind-mounted at
the same path and runs as the harness's user, so the files the harness wrote on the host are the
container's, with the same paths and owner; the other services run as their image's user.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from harness.processes import ProcessIdentity
from harness.stack.components import component_of
from harness.stack.credentials import StackCredentials
from harness.stack.description import STACK, ServiceSpec
from harness.stack.docker import containers
from harness.stack.docker.daemon import DaemonPaths
from harness.stack.docker.runtime import DockerRuntime
from harness.stack.lifecycle import initial_state
from harness.stack.state import DockerState, HarnessPaths
from harness.stack.values import StackValues


@pytest.fixture
def launched(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, dict[str, object]]:
    """Each service's ``containers.run`` arguments, once the fake runtime launched all of them."""
    calls: dict[str, dict[str, object]] = {}

    def run(client: object, spec: ServiceSpec, **arguments: object) -> containers.StartedContainer:
        calls[spec.name] = arguments
        return containers.StartedContainer(f"container-{spec.name}", ProcessIdentity(os.getpid(), 1))

    monkeypatch.setattr(containers, "run", run)
    monkeypatch.setattr(containers, "follow_logs", lambda *_arguments: None)
    paths = HarnessPaths(tmp_path / "home")
    runtime = DockerRuntime(paths, project_root=tmp_path, daemon_paths=DaemonPaths(tmp_path / "docker"))
    values = StackValues(
        backend="supabase",
        ports={service.name: 20000 + index for index, service in enumerate(STACK.services)},
        credentials=StackCredentials.generate(),
        project_root=tmp_path,
        data_dir=paths.data,
        database="botmox",
    )
    state = initial_state(values, None, "docker")
    state.docker = DockerState(host="unix:///nonexistent/docker.sock")
    runtime._client = object()  # type: ignore[assignment]  # never called: containers.run is faked
    runtime._images = {service.name: f"sha256:{service.name}" for service in STACK.services}
    for service in STACK.services:
        runtime._launch(component_of(service), values, state)
    return calls


def test_state_directories_are_mounted_at_their_path_and_run_as_the_harness_user(
    launched: dict[str, dict[str, object]], tmp_path: Path
) -> None:
    for name in ("agent", "syncthing"):
        volumes = launched[name]["volumes"]
        assert isinstance(volumes, dict)
        state_dir = str(tmp_path / "home" / "data" / name)
        assert volumes[state_dir] == {"bind": state_dir, "mode": "rw"}, name
        assert launched[name]["user"] == f"{os.getuid()}:{os.getgid()}", name


def test_other_services_keep_their_image_s_user_and_no_data_mount(
    launched: dict[str, dict[str, object]], tmp_path: Path
) -> None:
    for name in ("postgres", "rtdb", "api", "frontend"):
        assert launched[name]["user"] is None, name
        volumes = launched[name]["volumes"]
        assert isinstance(volumes, dict)
        assert not [path for path in volumes if path.startswith(str(tmp_path))], name


def test_the_agent_s_container_gets_the_paths_of_its_mounted_state(
    launched: dict[str, dict[str, object]], tmp_path: Path
) -> None:
    environment = launched["agent"]["environment"]
    assert isinstance(environment, dict)
    state_dir = tmp_path / "home" / "data" / "agent"
    assert environment["BOTMOX_AGENT_STATE_DIR"] == str(state_dir)
    assert environment["BOTMOX_AGENT_VAULT"] == str(state_dir / "vault.json")
    assert environment["BOTMOX_AGENT_KEY_SOURCE"] == "passphrase"
