"""Pairing: `botmox-agent pair` against a tiny register endpoint on 127.0.0.1, `run` pairing from
BOTMOX_AGENT_PAIRING_CODE; the credential lands in the vault only, and no output holds it or the code."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest
from runtime_support import (
    AGENT_ID,
    CREDENTIAL,
    PAIRING_CODE,
    TENANT_ID,
    FakeControlPlane,
    agent_settings,
    make_vault,
    paired_agent,
    running_agent,
)
from typer.testing import CliRunner, Result
from vault_support import PASSPHRASE, InMemoryKeyringDouble

from botmox_agent.__main__ import app
from botmox_agent.runtime import CREDENTIAL_REF, AgentSettings, StateDir
from botmox_agent.runtime._credential import open_vault

REGISTRATION = {
    "agent_id": AGENT_ID,
    "tenant_id": TENANT_ID,
    "credential": CREDENTIAL,
    "name": "edge-1",
    "version": "0.1.0",
    "capabilities": [],
    "created_at": "2026-12-06T08:00:00Z",
}


class RegisterServer:
    """POST /api/v1/agents/register: 201 for PAIRING_CODE (once), 401 for any other code."""

    def __init__(self) -> None:
        self.bodies: list[dict[str, object]] = []
        plane = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                plane.bodies.append(body)
                ok = self.path == "/api/v1/agents/register" and body.get("code") == PAIRING_CODE
                status, payload = (
                    (201, {"success": True, "data": REGISTRATION})
                    if ok
                    else (401, {"success": False, "error": {"code": "UNAUTHORIZED", "message": "refused"}})
                )
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: object) -> None:
                return None

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def __enter__(self) -> RegisterServer:
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def register() -> Iterator[RegisterServer]:
    with RegisterServer() as server:
        yield server


@pytest.fixture
def settings(tmp_path: Path) -> AgentSettings:
    return agent_settings(tmp_path)


def cli(settings: AgentSettings, *args: str, **env: str) -> Result:
    environment = {
        "BOTMOX_AGENT_STATE_DIR": str(settings.state_dir),
        "BOTMOX_AGENT_VAULT": str(settings.vault),
        "BOTMOX_AGENT_VAULT_PASSPHRASE": PASSPHRASE,
        "BOTMOX_AGENT_KEY_SOURCE": "passphrase",
        "BOTMOX_AGENT_PAIRING_CODE": "",
        "BOTMOX_AGENT_SERVER_URL": "",
        **env,
    }
    result = CliRunner().invoke(app, list(args), env=environment)
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    for text in (result.stdout, result.stderr):
        assert CREDENTIAL not in text
        assert PAIRING_CODE not in text
    return result


def test_pair_stores_the_credential_in_the_vault_and_the_identity_without_it(
    settings: AgentSettings, register: RegisterServer
) -> None:
    make_vault(settings.vault, credential=None)
    result = cli(settings, "pair", "--server", register.url + "/", "--code", PAIRING_CODE, "--name", "edge-1")
    assert result.exit_code == 0, result.stderr
    assert f"paired: agent {AGENT_ID} of tenant {TENANT_ID}" in result.stderr
    assert register.bodies[0]["name"] == "edge-1"
    assert register.bodies[0]["version"]
    assert open_vault(settings).get(CREDENTIAL_REF).reveal() == CREDENTIAL
    identity_file = settings.state_dir / "identity.json"
    text = identity_file.read_text()
    assert CREDENTIAL not in text
    assert PAIRING_CODE not in text
    identity = json.loads(text)
    assert identity["server_url"] == register.url
    assert (identity["agent_id"], identity["tenant_id"]) == (AGENT_ID, TENANT_ID)
    assert identity_file.stat().st_mode & 0o777 == 0o600
    assert settings.state_dir.stat().st_mode & 0o777 == 0o700


def test_pair_creates_the_vault_under_the_keyring(
    settings: AgentSettings, register: RegisterServer, memory_keyring: InMemoryKeyringDouble
) -> None:
    result = cli(
        settings,
        "pair",
        "--server",
        register.url,
        BOTMOX_AGENT_PAIRING_CODE=PAIRING_CODE,
        BOTMOX_AGENT_KEY_SOURCE="keyring",
    )
    assert result.exit_code == 0, result.stderr
    assert settings.vault.exists()
    assert len(memory_keyring.entries) == 1
    assert CREDENTIAL not in settings.vault.read_text()


def test_pair_refuses_when_already_paired_unless_forced(
    settings: AgentSettings, register: RegisterServer
) -> None:
    make_vault(settings.vault, credential=None)
    assert cli(settings, "pair", "--server", register.url, "--code", PAIRING_CODE).exit_code == 0
    again = cli(settings, "pair", "--server", register.url, "--code", PAIRING_CODE)
    assert again.exit_code == 11
    assert "already paired" in again.stderr
    assert "--force" in again.stderr
    assert len(register.bodies) == 1
    forced = cli(settings, "pair", "--server", register.url, "--code", PAIRING_CODE, "--force")
    assert forced.exit_code == 0, forced.stderr


def test_a_refused_code_exits_12_and_stores_nothing(
    settings: AgentSettings, register: RegisterServer
) -> None:
    make_vault(settings.vault, credential=None)
    result = cli(settings, "pair", "--server", register.url, "--code", "an-expired-code-0123456789")
    assert result.exit_code == 12
    assert "refused" in result.stderr
    assert "expired" in result.stderr
    assert "an-expired-code-0123456789" not in result.stdout + result.stderr
    assert not (settings.state_dir / "identity.json").exists()
    assert open_vault(settings).names() == []


def test_an_unreachable_server_exits_13(settings: AgentSettings) -> None:
    result = cli(settings, "pair", "--server", "http://127.0.0.1:9", "--code", PAIRING_CODE)
    assert result.exit_code == 13
    assert "cannot be reached" in result.stderr


def test_a_vault_problem_exits_15(settings: AgentSettings, register: RegisterServer) -> None:
    make_vault(settings.vault, credential=None)
    result = cli(
        settings,
        "pair",
        "--server",
        register.url,
        "--code",
        PAIRING_CODE,
        BOTMOX_AGENT_VAULT_PASSPHRASE="not the passphrase",
    )
    assert result.exit_code == 15
    assert result.stderr.startswith("botmox-agent: vault:")
    assert not (settings.state_dir / "identity.json").exists()
    # Found before the code was spent.
    assert register.bodies == []


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["pair", "--code", PAIRING_CODE], "--server URL"),
        (["pair", "--server", "http://127.0.0.1:9"], "--code CODE"),
        (["pair", "--server", "ftp://x", "--code", PAIRING_CODE], "http(s)://"),
    ],
)
def test_pair_usage_errors_exit_2(settings: AgentSettings, args: list[str], message: str) -> None:
    result = cli(settings, *args)
    assert result.exit_code == 2
    assert message in result.stderr


def test_a_passphrase_vault_without_its_passphrase_exits_15_before_spending_the_code(
    settings: AgentSettings, register: RegisterServer
) -> None:
    result = cli(
        settings, "pair", "--server", register.url, "--code", PAIRING_CODE, BOTMOX_AGENT_VAULT_PASSPHRASE=""
    )
    assert result.exit_code == 15
    assert "BOTMOX_AGENT_VAULT_PASSPHRASE" in result.stderr
    assert register.bodies == []
    assert not settings.vault.exists()


def test_run_exits_1_when_its_http_address_is_taken(settings: AgentSettings) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        paired = paired_agent(settings.state_dir.parent / "p", "http://127.0.0.1:9")
        result = cli(paired, "run", BOTMOX_AGENT_HTTP_ADDRESS=f"127.0.0.1:{port}")
    assert result.exit_code == 1
    assert "cannot listen on 127.0.0.1" in result.stderr


def test_invalid_settings_exit_2_naming_the_variable(settings: AgentSettings) -> None:
    result = cli(settings, "status", BOTMOX_AGENT_KEY_SOURCE="tpm")
    assert result.exit_code == 2
    assert "BOTMOX_AGENT_KEY_SOURCE" in result.stderr


def test_status_of_an_agent_never_paired_exits_3(settings: AgentSettings) -> None:
    result = cli(settings, "status")
    assert result.exit_code == 3
    assert "not paired" in result.stdout
    assert "not running" in result.stdout


async def test_run_pairs_from_the_pairing_code_first(tmp_path: Path) -> None:
    seen: list[dict[str, object]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(json.loads(request.content))
        return httpx.Response(201, json={"success": True, "data": REGISTRATION})

    async with FakeControlPlane() as plane:
        settings = agent_settings(tmp_path, server_url=plane.url, pairing_code=PAIRING_CODE)
        make_vault(settings.vault, credential=None)
        async with running_agent(settings, pairing_transport=httpx.MockTransport(handler)) as running:
            await plane.wait_welcomed()
            assert seen[0]["capabilities"] == ["proxmox.vm.start", "syncthing.status"]
            assert "agent.paired" in running.event_names()
            assert PAIRING_CODE not in running.log.getvalue()
        identity = StateDir(settings.state_dir).read_identity()
        assert identity is not None
        assert identity.agent_id == AGENT_ID
        # Once paired, the code is ignored.
        async with running_agent(settings, pairing_transport=httpx.MockTransport(handler)):
            await plane.wait_welcomed(connections=2)
        assert len(seen) == 1
