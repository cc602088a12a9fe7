"""What the stack's agent needs before each start: SyncThing's API key in its vault, a pairing code.

- **The vault** (``BOTMOX_AGENT_VAULT``, in the agent's state directory under the stack's data dir) is
  created with the stack's passphrase (``BOTMOX_AGENT_KEY_SOURCE=passphrase``: a container has no OS
  keyring) and holds ``secret://syncthing/api-key``, the key of the stack's SyncThing. The agent adds its
  own credential (``secret://botmox/agent-credential``) when it pairs. The harness writes it on the host
  in both runtimes; the docker runtime mounts the state directory at the same path and runs the
  agent's container as the harness's user, so the vault's owner and mode checks hold there too.
- **The pairing code** is a one-time code (10 minutes) the harness asks the stack's API for with the
  internal infra token (an admin of the stack's default tenant, which is the demo tenant) once the API
  is healthy; the agent pairs with it on its first start (``BOTMOX_AGENT_PAIRING_CODE``). A value of
  this start only: never written to the state file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Final

import httpx

from botmox_agent.vault import KDF_COSTS, PassphraseKeySource, SecretValue, Vault, VaultError, VaultNotFound

SYNCTHING_API_KEY: Final = "syncthing/api-key"
PAIRINGS_PATH: Final = "/api/v1/agents/pairings"
# The vault is the stack's, thrown away with it: Argon2id's interactive cost (64 MiB) keeps `up` quick.
_KDF_COST: Final = KDF_COSTS["interactive"]
_TIMEOUT_S: Final = 10.0


class AgentSetupFailed(RuntimeError):
    """The vault could not be written or the API gave no pairing code; the message holds no secret."""


def seed_vault(path: Path, *, passphrase: str, syncthing_api_key: str) -> None:
    """Create the vault at ``path`` (or open the one there) and put SyncThing's API key in it."""
    source = PassphraseKeySource(SecretValue(passphrase), cost=_KDF_COST)
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        try:
            vault = Vault.open(path, source)
        except VaultNotFound:
            vault = Vault.create(path, source)
        vault.set(SYNCTHING_API_KEY, SecretValue(syncthing_api_key))
    except (VaultError, OSError) as error:
        raise AgentSetupFailed(f"the agent's vault {path}: {error}") from None


def create_pairing_code(api_url: str, infra_token: str) -> str:
    """A one-time pairing code from the API (``POST /api/v1/agents/pairings`` as the infra token)."""
    headers = {"Authorization": f"Bearer {infra_token}", "Accept": "application/json"}
    try:
        with httpx.Client(base_url=api_url, timeout=_TIMEOUT_S, trust_env=False) as client:
            answer = client.post(PAIRINGS_PATH, headers=headers)
    except httpx.HTTPError as error:
        raise AgentSetupFailed(f"POST {PAIRINGS_PATH}: {type(error).__name__}: {error}") from None
    try:
        envelope = answer.json()
    except ValueError:
        envelope = None
    if answer.status_code != 201 or not isinstance(envelope, dict):
        raise AgentSetupFailed(f"POST {PAIRINGS_PATH} answered {answer.status_code}: {_error_of(envelope)}")
    data = envelope.get("data")
    code = data.get("code") if isinstance(data, dict) else None
    if not isinstance(code, str) or not code:
        raise AgentSetupFailed(f"POST {PAIRINGS_PATH} answered 201 without a code")
    return code


def _error_of(envelope: object) -> str:
    error = envelope.get("error") if isinstance(envelope, dict) else None
    if isinstance(error, dict):
        return f"{error.get('code')}: {error.get('message')}"
    return "no envelope"
