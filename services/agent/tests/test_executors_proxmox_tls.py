"""TLS to a Proxmox host for real: an HTTPS server on 127.0.0.1 with a certificate from a test CA.

Verification is on by default: the host's certificate must chain to the public CAs, to the entry's
``ca_file`` or to the agent-wide ``ExecutorSettings.ca_file``; ``verify_tls: false`` turns it off.
"""

from __future__ import annotations

import json
import ssl
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import trustme
from executors_support import PROXMOX_REF, ProgressLog, resolver, vault_with
from pydantic import JsonValue

from botmox_agent.executors import CommandFailed, ExecutorSettings, build_executors
from botmox_protocol import COMMAND_KINDS

TOKEN = "PVEAPIToken=root@pam!botmox=9d3e0c41-5a7b-4f12-8e6d-2b9a1c7f0e35"
NODES = [{"node": "pve1", "status": "online", "cpu": 0.01, "maxcpu": 4, "mem": 1, "maxmem": 2, "uptime": 3}]


class _PveStandIn(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        authorized = self.headers.get("Authorization") == TOKEN and self.path == "/api2/json/nodes"
        body = json.dumps({"data": NODES if authorized else None}).encode()
        self.send_response(200 if authorized else 401)
        self.send_header("Content-Type", "application/json;charset=UTF-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        """Quiet: nothing to stderr."""


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture(scope="module")
def pve(ca: trustme.CA) -> Iterator[str]:
    """``https://localhost:PORT`` answering ``GET /api2/json/nodes`` with a certificate of ``ca``."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _PveStandIn)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("localhost").configure_cert(context)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"https://localhost:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


async def nodes_list(tmp_path: Path, entry: dict[str, object], settings: ExecutorSettings) -> JsonValue:
    token_id, token_secret = TOKEN.removeprefix("PVEAPIToken=").rsplit("=", 1)
    document = {"token_id": token_id, "token_secret": token_secret, **entry}
    vault = vault_with(tmp_path / "vault.json", {PROXMOX_REF: json.dumps(document)})
    executors = build_executors(settings, resolver(vault))
    try:
        params = COMMAND_KINDS.validate("proxmox.nodes.list", {"credential": PROXMOX_REF})
        return await executors.run("proxmox.nodes.list", params, ProgressLog())
    finally:
        await executors.aclose()


@pytest.fixture
def ca_file(tmp_path: Path, ca: trustme.CA) -> Path:
    path = tmp_path / "pve-ca.pem"
    ca.cert_pem.write_to_path(str(path))
    return path


async def test_an_untrusted_certificate_is_refused_by_default(tmp_path: Path, pve: str) -> None:
    with pytest.raises(CommandFailed) as failure:
        await nodes_list(tmp_path, {"url": pve}, ExecutorSettings(syncthing_url=None))
    assert failure.value.code == "PROXMOX_UNREACHABLE"
    assert "TLS certificate is not trusted" in failure.value.message


async def test_the_entrys_ca_file_is_trusted(tmp_path: Path, pve: str, ca_file: Path) -> None:
    result = await nodes_list(
        tmp_path, {"url": pve, "ca_file": str(ca_file)}, ExecutorSettings(syncthing_url=None)
    )
    assert result == {"nodes": NODES}


async def test_the_agents_ca_file_is_trusted(tmp_path: Path, pve: str, ca_file: Path) -> None:
    result = await nodes_list(tmp_path, {"url": pve}, ExecutorSettings(syncthing_url=None, ca_file=ca_file))
    assert result == {"nodes": NODES}


async def test_verification_can_be_turned_off(tmp_path: Path, pve: str) -> None:
    result = await nodes_list(
        tmp_path, {"url": pve, "verify_tls": False}, ExecutorSettings(syncthing_url=None)
    )
    assert result == {"nodes": NODES}
