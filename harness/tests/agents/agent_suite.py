"""The agent suite's helpers, imported by its tests and its conftest (a module of its own: a test
importing ``conftest`` by name would get whichever conftest came first on sys.path)."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, TypeVar

import jwt
from pydantic import SecretStr
from real_agent import PASSPHRASE, GatedExecutors, InProcessAgent, create_vault

from botmox_agent.executors import Executors, SecretResolver
from botmox_agent.runtime import AgentSettings
from botmox_api.model import DataBackend
from harness import processes
from harness.fixtures.agents_api import AgentsApi
from harness.fixtures.cli_stack import StackUnderTest, transcript
from harness.fixtures.loopback_tls import LoopbackTls
from harness.fixtures.tls_proxy import TlsTerminatingProxy

T = TypeVar("T")
TERMINAL: Final = frozenset({"succeeded", "failed", "expired", "cancelled"})

BACKEND: Final[DataBackend] = "supabase"
# A variable the API ignores; toggling it makes `flip` restart the API in the same mode.
RESTART_VARIABLE = "BOTMOX_E2E_RESTART"
TOKEN_LIFETIME_S = 3600


@dataclass(frozen=True)
class Tenant:
    """A tenant of the test's own and an admin's bearer token for it."""

    tenant_id: str
    token: str


def admin_token(stack: StackUnderTest, tenant_id: str) -> str:
    """A Supabase-style token of an admin of ``tenant_id``, signed with the stack's JWT secret (the
    demo token's claims, ``harness.stack.tokens``, with the admin role pairing and revoking need)."""
    now = int(time.time())
    claims: dict[str, object] = {
        "sub": str(uuid.uuid5(uuid.NAMESPACE_URL, f"botmox-e2e-admin:{tenant_id}")),
        "email": f"admin@{tenant_id}.test",
        "aud": stack.state.jwt_audience,
        "role": "authenticated",
        "iat": now,
        "exp": now + TOKEN_LIFETIME_S,
        "app_metadata": {"tenant_id": tenant_id, "roles": ["api", "admin"]},
    }
    if stack.state.jwt_issuer is not None:
        claims["iss"] = stack.state.jwt_issuer
    return jwt.encode(claims, stack.state.jwt_secret, algorithm="HS256")


def restart_api(stack: StackUnderTest) -> processes.ProcessIdentity:
    """Stop and start the API process (``flip`` in its own mode, with a toggled extra variable);
    the new API's identity. The stores keep running."""
    current = stack.current()
    old = current.processes["api"]
    toggled = "0" if current.extra_environment.get("api", {}).get(RESTART_VARIABLE) == "1" else "1"
    result = stack.cli(
        "flip", "--backend", current.data_backend, "--api-env", f"{RESTART_VARIABLE}={toggled}"
    )
    assert result.returncode == 0, f"restarting the API failed: {transcript(result)}"
    new = stack.current().processes["api"]
    assert new != old
    assert not processes.is_running(old)
    return new


@dataclass
class AgentFactory:
    """Starts real agents (``real_agent.InProcessAgent``) paired through the TLS proxy; stops them."""

    stack: StackUnderTest
    api: AgentsApi
    proxy: TlsTerminatingProxy
    tls: LoopbackTls
    workdir: Path
    started: list[InProcessAgent]

    def settings(self, owner: Tenant, name: str, *, syncthing_url: str = "") -> AgentSettings:
        """Settings of a new agent of ``owner``: a fresh state dir and passphrase vault, the proxy's
        https URL, the throwaway CA, and a pairing code ``run`` pairs with on first start."""
        home = self.workdir / f"{name}-{uuid.uuid4().hex[:6]}"
        return AgentSettings(
            state_dir=home / "state",
            vault=home / "vault.json",
            key_source="passphrase",
            vault_passphrase=SecretStr(PASSPHRASE),
            server_url=self.proxy.url,
            pairing_code=SecretStr(self.api.create_pairing(owner.token)),
            name=name,
            ca_file=self.tls.ca_file,
            http_address="127.0.0.1:0",
            syncthing_url=syncthing_url,
        )

    def start(
        self,
        settings: AgentSettings,
        executors: Callable[[AgentSettings, SecretResolver], Executors],
        *,
        secrets: dict[str, str] | None = None,
        wait: bool = True,
    ) -> InProcessAgent:
        if secrets and not settings.vault.exists():
            settings.vault.parent.mkdir(parents=True, exist_ok=True)
            create_vault(settings.vault, secrets)
        agent = InProcessAgent(settings, executors).start()
        self.started.append(agent)
        if wait:
            agent.wait_connected()
        return agent

    def start_with(self, owner: Tenant, name: str, executors: GatedExecutors) -> InProcessAgent:
        return self.start(self.settings(owner, name), lambda _settings, _secrets: executors)


def wait_until(condition: Callable[[], T | None], timeout_s: float, what: str) -> T:
    """Poll ``condition`` until it returns something else than None or False; fail after the bound."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = condition()
        if value is not None and value is not False:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout_s} s")
        time.sleep(0.05)


def finished_command(
    api: AgentsApi, token: str, agent_id: str, command_id: str, timeout_s: float = 30.0
) -> dict[str, Any]:
    """The command once it has a stored outcome (``GET .../commands/{id}``)."""

    def done() -> dict[str, Any] | None:
        command = api.command(token, agent_id, command_id)
        return command if command["status"] in TERMINAL else None

    return wait_until(done, timeout_s, f"command {command_id} finished")


def command_rows(stack: StackUnderTest, agent_id: str) -> list[dict[str, Any]]:
    """The agent's ``agent_commands`` rows, as the database's administrator reads them."""
    return stack.sql(
        "select id::text, status, deliveries, result_data, error_code, acked_at, finished_at"
        " from public.agent_commands where agent_id = %s order by created_at",
        (agent_id,),
    )
