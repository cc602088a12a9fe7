"""The vault as the runtime reads it: opened once, on first use (pairing may create it first), then
kept open so a passphrase's Argon2id runs once per process."""

from __future__ import annotations

from botmox_agent.runtime._credential import open_vault
from botmox_agent.runtime._settings import AgentSettings
from botmox_agent.vault import SecretRef, SecretValue, Vault


class VaultSecrets:
    def __init__(self, settings: AgentSettings) -> None:
        self._settings = settings
        self._vault: Vault | None = None

    def vault(self) -> Vault:
        if self._vault is None:
            self._vault = open_vault(self._settings)
        return self._vault

    def get(self, ref: SecretRef) -> SecretValue:
        """A ``SecretResolver`` for the executors; raises the vault's errors."""
        return self.vault().get(ref)
