"""Per-stack secrets, generated fresh by every ``up`` with ``secrets``; never fixed in code."""

from __future__ import annotations

import secrets
from dataclasses import dataclass

# The API refuses internal tokens shorter than 32 characters; token_urlsafe(32) gives 43.
_TOKEN_BYTES = 32


@dataclass(frozen=True, slots=True)
class StackCredentials:
    jwt_secret: str
    internal_api_token: str
    internal_infra_token: str
    db_api_password: str
    # The stack's SyncThing's GUI/REST API key (its config.xml and the agent's vault).
    syncthing_api_key: str
    # The agent's vault passphrase (BOTMOX_AGENT_KEY_SOURCE=passphrase: a container has no keyring).
    agent_vault_passphrase: str

    @classmethod
    def generate(cls) -> StackCredentials:
        return cls(
            jwt_secret=secrets.token_urlsafe(48),
            internal_api_token=secrets.token_urlsafe(_TOKEN_BYTES),
            internal_infra_token=secrets.token_urlsafe(_TOKEN_BYTES),
            db_api_password=secrets.token_urlsafe(24),
            syncthing_api_key=secrets.token_urlsafe(_TOKEN_BYTES),
            agent_vault_passphrase=secrets.token_urlsafe(_TOKEN_BYTES),
        )

    def placeholders(self) -> dict[str, str]:
        return {
            "secret.jwt_secret": self.jwt_secret,
            "secret.internal_api_token": self.internal_api_token,
            "secret.internal_infra_token": self.internal_infra_token,
            "secret.db_api_password": self.db_api_password,
            "secret.syncthing_api_key": self.syncthing_api_key,
            "secret.agent_vault_passphrase": self.agent_vault_passphrase,
        }
