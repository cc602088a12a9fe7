"""Shared by the executors' tests: a real vault holding the entries, progress reports, Proxmox entries."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from proxmox_replay import BASE_URL, TOKEN_ID
from vault_support import CHEAP_COST, PASSPHRASE

from botmox_agent.executors import SecretResolver
from botmox_agent.vault import PassphraseKeySource, SecretRef, SecretValue, Vault

PROXMOX_REF = "secret://proxmox/pve1"


def proxmox_entry(token_secret: str, **overrides: object) -> str:
    """The JSON text of a Proxmox host's vault entry (seams16.md section 3)."""
    entry: dict[str, object] = {
        "url": BASE_URL,
        "token_id": TOKEN_ID,
        "token_secret": token_secret,
        "verify_tls": True,
    }
    entry.update(overrides)
    return json.dumps(entry)


def vault_with(path: Path, entries: dict[str, str]) -> Vault:
    """A passphrase vault at ``path`` (Argon2id at its minimum cost) holding ``entries``."""
    vault = Vault.create(path, PassphraseKeySource(SecretValue(PASSPHRASE), CHEAP_COST))
    for name, value in entries.items():
        vault.set(SecretRef.parse(name), SecretValue(value))
    return vault


def resolver(vault: Vault) -> SecretResolver:
    return vault.get


@dataclass
class ProgressLog:
    """A ``Progress`` callback that keeps what it was told."""

    reports: list[tuple[int | None, str | None]] = field(default_factory=list)

    async def __call__(self, percent: int | None, message: str | None) -> None:
        self.reports.append((percent, message))
