"""The agent's credential in the vault (``secret://botmox/agent-credential``), and opening the vault
from the settings: its file is ``BOTMOX_AGENT_VAULT``, its key source the file's own (a new vault's is
``BOTMOX_AGENT_KEY_SOURCE``), a passphrase comes from ``BOTMOX_AGENT_VAULT_PASSPHRASE``. A service has no
terminal, so nothing here prompts; the vault's errors say what is missing.
"""

from __future__ import annotations

from typing import Final

from botmox_agent.runtime._settings import AgentSettings
from botmox_agent.vault import (
    PASSPHRASE_ENV,
    KeyringKeySource,
    KeySource,
    KeySourceUnavailable,
    PassphraseKeySource,
    SecretRef,
    SecretValue,
    Vault,
    VaultNotFound,
    key_kind,
)

CREDENTIAL_REF: Final = SecretRef.parse("secret://botmox/agent-credential")


def open_vault(settings: AgentSettings) -> Vault:
    """The existing vault; the vault's errors (``VaultNotFound``, ``WrongKey``, ...) otherwise."""
    return Vault.open(settings.vault, _key_source(settings, key_kind(settings.vault)))


def open_or_create_vault(settings: AgentSettings) -> Vault:
    try:
        return open_vault(settings)
    except VaultNotFound:
        return Vault.create(settings.vault, _key_source(settings, settings.key_source))


def load_credential(vault: Vault) -> SecretValue:
    return vault.get(CREDENTIAL_REF)


def _key_source(settings: AgentSettings, kind: str) -> KeySource:
    if kind == "keyring":
        return KeyringKeySource()
    if settings.vault_passphrase is None:
        raise KeySourceUnavailable(f"the vault passphrase is needed: set {PASSPHRASE_ENV}")
    return PassphraseKeySource(SecretValue(settings.vault_passphrase.get_secret_value()))
