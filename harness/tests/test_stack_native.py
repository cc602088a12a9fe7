"""The native runtime when a service fails to start: what started is stopped again."""

from __future__ import annotations

import dataclasses
import subprocess
from pathlib import Path
from types import MappingProxyType

import httpx
import pytest

from harness import processes, syncthing
from harness.processes import port_is_listening
from harness.stack.description import API, STACK, SYNCTHING, HealthCheck, StackDescription
from harness.stack.health import ServiceUnhealthy
from harness.stack.native import NativeRuntime
from harness.stack.state import HarnessPaths, load

pytestmark = pytest.mark.integration


def test_a_failing_service_stops_everything_started_before_it(tmp_path: Path) -> None:
    broken_api = dataclasses.replace(
        API, command=("python", "-c", "import sys; print('api refuses to start'); sys.exit(3)")
    )
    services = tuple(broken_api if service.name == "api" else service for service in STACK.services)
    description = StackDescription(services=services, migrations=STACK.migrations)
    paths = HarnessPaths(tmp_path / "home")
    runtime = NativeRuntime(paths, description=description)
    try:
        with pytest.raises(ServiceUnhealthy, match="api refuses to start"):
            runtime.up("rtdb")
    finally:
        state = load(paths)
        assert state is not None
        runtime.down(state)
    assert set(state.processes) == {"postgres", "rtdb", "syncthing", "api"}
    for name, identity in state.processes.items():
        assert not processes.is_running(identity), name
    for port in state.ports.values():
        assert not port_is_listening(port)
    assert state.postgres_dir is not None
    assert not Path(state.postgres_dir).exists()
    assert (paths.logs / "migrations.log").exists()


_FAKE_API = """
import http.server, os, sys
if os.environ["DATA_BACKEND"] == "supabase":
    print("this API refuses supabase mode")
    sys.exit(3)
class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200)
        self.end_headers()
        self.wfile.write(os.environ["DATA_BACKEND"].encode())
    def log_message(self, *args):
        pass
http.server.HTTPServer(("127.0.0.1", int(os.environ["PORT"])), Handler).serve_forever()
"""


def test_a_failed_flip_starts_the_api_again_in_its_old_mode(tmp_path: Path) -> None:
    fake_api = dataclasses.replace(
        API,
        command=("python", "-c", _FAKE_API),
        environment=MappingProxyType({"DATA_BACKEND": "${backend}", "PORT": "${api.port}"}),
        health=HealthCheck("http", "/health", timeout_s=20),
        depends_on=(),
    )
    paths = HarnessPaths(tmp_path / "home")
    runtime = NativeRuntime(paths, description=StackDescription(services=(fake_api,)))
    state = runtime.up("rtdb")
    try:
        first = state.processes["api"]
        with pytest.raises(ServiceUnhealthy, match="refuses supabase"):
            runtime.flip(state, "supabase")
        assert not processes.is_running(first)
        again = state.processes["api"]
        assert again != first
        assert processes.is_running(again)
        assert state.data_backend == "rtdb"
        assert load(paths) == state
        assert httpx.get(f"{state.api_url}/", timeout=5, trust_env=False).text == "rtdb"
    finally:
        runtime.down(state)
    assert not processes.is_running(state.processes["api"])
    assert not port_is_listening(state.ports["api"])


def test_the_stack_s_syncthing_answers_with_its_key_on_loopback_only(tmp_path: Path) -> None:
    """The syncthing service as `up` runs it: its home written by the harness (loopback rules, the
    stack's API key in config.xml), healthy, its REST API open to the key alone, the key on no
    command line, and nothing of it left after `down`."""
    paths = HarnessPaths(tmp_path / "home")
    runtime = NativeRuntime(paths, description=StackDescription(services=(SYNCTHING,)))
    state = runtime.up("rtdb")
    try:
        url = f"http://127.0.0.1:{state.ports['syncthing']}"
        key = state.syncthing_api_key
        with httpx.Client(base_url=url, timeout=5, trust_env=False) as client:
            assert client.get("/rest/system/status").status_code == 403
            answer = client.get("/rest/system/status", headers={"X-API-Key": key})
            assert answer.status_code == 200, answer.text
            options = client.get("/rest/config/options", headers={"X-API-Key": key}).json()
        for name, value in syncthing.LOOPBACK_OPTIONS.items():
            if name in options and not isinstance(options[name], list):
                assert str(options[name]).lower() == value.lower(), name
        assert options["globalAnnounceEnabled"] is False
        assert options["relaysEnabled"] is False
        assert options["natEnabled"] is False
        identity = state.processes["syncthing"]
        command_line = Path(f"/proc/{identity.pid}/cmdline").read_bytes()
        assert key.encode() not in command_line
        home = paths.data / "syncthing"
        assert (home / "config.xml").stat().st_mode & 0o077 == 0
    finally:
        runtime.down(state)
    assert not processes.is_running(state.processes["syncthing"])
    assert not port_is_listening(state.ports["syncthing"])


_SYNCTHING_IMAGE = Path(__file__).resolve().parents[1] / "docker" / "syncthing"


def test_the_syncthing_image_s_entrypoint_serves_the_home_the_harness_wrote(tmp_path: Path) -> None:
    """harness/docker/syncthing/entrypoint.sh run as the image runs it (its ENV), without Docker: it
    refuses a home without config.xml, and serves one harness.syncthing wrote on $HOST:$PORT."""
    entrypoint = str(_SYNCTHING_IMAGE / "entrypoint.sh")
    port = processes.free_port()
    home = tmp_path / "syncthing"
    environment = {
        "PATH": "/usr/bin:/bin",
        "HOME": str(tmp_path),
        "HOST": "127.0.0.1",
        "PORT": str(port),
        "SYNCTHING_HOME": str(home),
        **syncthing.ENVIRONMENT,
    }
    refused = subprocess.run(["sh", entrypoint], env=environment, capture_output=True, text=True, timeout=30)
    assert refused.returncode == 64, refused.stderr
    assert "no config.xml" in refused.stderr

    key = syncthing.new_api_key()
    syncthing.configure_home(home, gui_port=processes.free_port(), api_key=key)
    _identity, child = processes.spawn(
        ["sh", entrypoint], log_path=tmp_path / "st.log", environment=environment
    )
    try:

        def answers() -> bool | None:
            try:
                status = httpx.get(
                    f"http://127.0.0.1:{port}/rest/system/status", headers={"X-API-Key": key}, trust_env=False
                )
            except httpx.TransportError:
                return None
            return True if status.status_code == 200 else None

        processes.wait_ready(
            "syncthing",
            answers,
            alive=lambda: child.poll() is None,
            timeout_s=30,
            log_path=tmp_path / "st.log",
        )
    finally:
        # stop_child reaps it too: `exec syncthing` leaves the Popen ours.
        processes.stop_child(child)
    assert child.returncode is not None
    assert not port_is_listening(port)
