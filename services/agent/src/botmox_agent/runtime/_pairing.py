"""Pairing: exchanging a one-time code for this agent's id and credential
(``POST {server}/api/v1/agents/register``, docs/contracts/api-v1.md), then keeping the credential in the
vault and the identity (no secret) in the state directory.

Neither the code nor the credential is ever printed, logged or put in an error message; the server's
own messages are not repeated either (they could quote what they refused).
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final

import httpx
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from botmox_agent.runtime._credential import CREDENTIAL_REF, open_or_create_vault
from botmox_agent.runtime._settings import AgentSettings, check_server_url
from botmox_agent.runtime._state import Identity, StateDir
from botmox_agent.vault import SecretValue

REGISTER_PATH: Final = "/api/v1/agents/register"
TIMEOUT_S: Final = 30.0


class PairingError(Exception):
    """Pairing did not happen; the message says why and what to do."""


class AlreadyPaired(PairingError):
    pass


class CodeRefused(PairingError):
    pass


class ServerUnreachable(PairingError):
    pass


class ServerRefused(PairingError):
    """The server answered, but not with a registration (a 4xx/5xx other than 401, or a body off the API)."""


class _Registration(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    agent_id: str = Field(min_length=1, max_length=64)
    tenant_id: str = Field(min_length=1, max_length=128)
    credential: str = Field(min_length=16, max_length=512)
    name: str


class _Envelope(BaseModel):
    model_config = ConfigDict(extra="ignore")

    success: bool
    data: _Registration


@dataclass(frozen=True)
class PairingRequest:
    server_url: str
    code: SecretValue
    name: str
    version: str
    capabilities: tuple[str, ...]


def pair(
    settings: AgentSettings,
    request: PairingRequest,
    *,
    tls: ssl.SSLContext,
    force: bool = False,
    transport: httpx.BaseTransport | None = None,
) -> Identity:
    """Registers this agent and keeps what it got: the credential in the vault first (an identity
    without its credential would be useless), then identity.json. The vault's errors pass through."""
    state = StateDir(settings.state_dir)
    if not force and state.read_identity() is not None:
        raise AlreadyPaired(
            f"this agent is already paired ({state.identity_path}); pass --force to pair it again "
            "(the old agent stays registered until an admin revokes it)"
        )
    server_url = check_server_url(request.server_url)
    # The vault opens (or is created) before the code is spent: a wrong passphrase must not cost it.
    vault = open_or_create_vault(settings)
    registration = _register(server_url, request, tls=tls, transport=transport)
    vault.set(CREDENTIAL_REF, SecretValue(registration.credential))
    identity = Identity(
        server_url=server_url,
        agent_id=registration.agent_id,
        tenant_id=registration.tenant_id,
        name=registration.name,
        paired_at=datetime.now(UTC).isoformat().replace("+00:00", "Z"),
    )
    state.write_identity(identity)
    return identity


def _register(
    server_url: str, request: PairingRequest, *, tls: ssl.SSLContext, transport: httpx.BaseTransport | None
) -> _Registration:
    body = {
        "code": request.code.reveal(),
        "name": request.name,
        "version": request.version,
        "capabilities": list(request.capabilities),
    }
    try:
        with httpx.Client(
            verify=tls, timeout=TIMEOUT_S, transport=transport, follow_redirects=False
        ) as client:
            response = client.post(server_url + REGISTER_PATH, json=body)
    except httpx.HTTPError as error:
        raise ServerUnreachable(
            f"the server at {server_url} cannot be reached ({type(error).__name__}); check the URL, "
            "the network and, for a private CA, BOTMOX_AGENT_CA_FILE"
        ) from None
    if response.status_code == 401:
        raise CodeRefused(
            "the pairing code was refused: unknown, expired (codes last 10 minutes) or already used; "
            "ask a tenant admin for a new one"
        )
    if response.status_code == 429:
        raise ServerRefused("too many pairing attempts from this address; wait a minute and try again")
    if response.status_code != 201:
        raise ServerRefused(
            f"the server answered HTTP {response.status_code} to the registration; is {server_url} "
            "the Bot-Mox control plane?"
        )
    try:
        return _Envelope.model_validate_json(response.content).data
    except ValidationError:
        raise ServerRefused("the server's answer to the registration is not an agent registration") from None
