"""What the harness does for the stack's agent before it starts: the vault, the pairing code."""

from __future__ import annotations

import json
import stat
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

import pytest

from botmox_agent.vault import KDF_COSTS, PassphraseKeySource, SecretValue, Vault, key_kind
from harness import processes
from harness.stack.agent_setup import (
    PAIRINGS_PATH,
    SYNCTHING_API_KEY,
    AgentSetupFailed,
    create_pairing_code,
    seed_vault,
)

INFRA_TOKEN = "infra-token-of-this-stack-0123456789abcdef"


def _open(path: Path, passphrase: str) -> Vault:
    return Vault.open(path, PassphraseKeySource(SecretValue(passphrase), cost=KDF_COSTS["interactive"]))


def test_the_vault_is_created_private_with_syncthing_s_key(tmp_path: Path) -> None:
    path = tmp_path / "data" / "agent" / "vault.json"
    seed_vault(path, passphrase="stack-passphrase", syncthing_api_key="syncthing-key")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert key_kind(path) == "passphrase"
    assert _open(path, "stack-passphrase").get(SYNCTHING_API_KEY).reveal() == "syncthing-key"
    # Neither secret is in the file in clear.
    raw = path.read_bytes()
    assert b"syncthing-key" not in raw
    assert b"stack-passphrase" not in raw


def test_seeding_again_keeps_the_vault_and_its_other_secrets(tmp_path: Path) -> None:
    path = tmp_path / "vault.json"
    seed_vault(path, passphrase="p", syncthing_api_key="first")
    _open(path, "p").set("botmox/agent-credential", SecretValue("credential"))
    seed_vault(path, passphrase="p", syncthing_api_key="second")
    vault = _open(path, "p")
    assert vault.get(SYNCTHING_API_KEY).reveal() == "second"
    assert vault.get("botmox/agent-credential").reveal() == "credential"


def test_a_vault_under_another_passphrase_is_refused_without_its_secrets(tmp_path: Path) -> None:
    path = tmp_path / "vault.json"
    seed_vault(path, passphrase="right-passphrase", syncthing_api_key="secret-key")
    before = path.read_bytes()
    with pytest.raises(AgentSetupFailed) as refused:
        seed_vault(path, passphrase="other-passphrase", syncthing_api_key="other-key")
    for secret in ("secret-key", "other-key", "right-passphrase", "other-passphrase"):
        assert secret not in str(refused.value)
    assert path.read_bytes() == before


class _FakePairings(BaseHTTPRequestHandler):
    answer: ClassVar[tuple[int, object]] = (
        201,
        {"success": True, "data": {"code": "c0de", "expires_at": "x"}},
    )
    seen: ClassVar[list[tuple[str, str]]] = []

    def do_POST(self) -> None:
        self.seen.append((self.path, self.headers.get("Authorization", "")))
        status, body = self.answer
        payload = json.dumps(body).encode() if not isinstance(body, bytes) else body
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, format: str, *args: object) -> None:
        """Quiet."""


@pytest.fixture
def api() -> Iterator[tuple[str, type[_FakePairings]]]:
    handler = type("Pairings", (_FakePairings,), {"seen": []})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", handler
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def test_the_pairing_code_is_asked_for_with_the_infra_token(api: tuple[str, type[_FakePairings]]) -> None:
    url, handler = api
    assert create_pairing_code(url, INFRA_TOKEN) == "c0de"
    assert handler.seen == [(PAIRINGS_PATH, f"Bearer {INFRA_TOKEN}")]


@pytest.mark.parametrize(
    ("answer", "message"),
    [
        (
            (503, {"success": False, "error": {"code": "SUPABASE_CONFIG_ERROR", "message": "no db"}}),
            "answered 503: SUPABASE_CONFIG_ERROR: no db",
        ),
        (
            (403, {"success": False, "error": {"code": "FORBIDDEN", "message": "Role admin"}}),
            "403: FORBIDDEN",
        ),
        ((201, {"success": True, "data": {}}), "201 without a code"),
        ((200, b"not json"), "answered 200: no envelope"),
    ],
)
def test_a_refused_pairing_says_why_and_never_the_token(
    api: tuple[str, type[_FakePairings]], answer: tuple[int, object], message: str
) -> None:
    url, handler = api
    handler.answer = answer
    with pytest.raises(AgentSetupFailed, match=message) as refused:
        create_pairing_code(url, INFRA_TOKEN)
    assert INFRA_TOKEN not in str(refused.value)


def test_an_unreachable_api_is_a_setup_failure() -> None:
    with pytest.raises(AgentSetupFailed, match="ConnectError"):
        create_pairing_code(f"http://127.0.0.1:{processes.free_port()}", INFRA_TOKEN)
