"""Reading a vault entry for a command: the vault's errors become the command's error codes.

The vault's messages name the entry and the vault file, never a value (``botmox_agent.vault``), so
they are passed on to the tenant as they are.
"""

from __future__ import annotations

from botmox_agent.executors._contract import CommandFailed, SecretResolver
from botmox_agent.vault import SecretNotFound, SecretRef, SecretValue, VaultError


def resolve(secrets: SecretResolver, ref: SecretRef) -> SecretValue:
    """The value at ``ref``; ``CommandFailed`` SECRET_NOT_FOUND or VAULT_ERROR."""
    try:
        return secrets(ref)
    except SecretNotFound:
        raise CommandFailed(
            "SECRET_NOT_FOUND", f"no secret {ref} in the agent's vault; `botmox-agent vault set {ref.name}`"
        ) from None
    except VaultError as error:
        raise CommandFailed("VAULT_ERROR", f"the agent's vault cannot give {ref}: {error}") from None
