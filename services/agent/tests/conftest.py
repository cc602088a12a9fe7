"""Agent test fixtures: a vault's path, key sources, and an in-memory keyring test double.

The machine running the tests may have no OS keyring (``keyring.backends.fail.Keyring``) or a real one
that tests must not touch: ``memory_keyring`` installs the double for one test and puts the previous
backend back. Argon2id runs at libsodium's minimum cost here (``CHEAP_COST``).
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import keyring
import pytest

# --import-mode=importlib keeps test directories off sys.path; the shared helpers live here.
sys.path.insert(0, str(Path(__file__).parent))

from vault_support import CHEAP_COST, PASSPHRASE, InMemoryKeyringDouble

from botmox_agent.vault import KeyringKeySource, PassphraseKeySource, SecretValue


@pytest.fixture
def memory_keyring() -> Iterator[InMemoryKeyringDouble]:
    previous = keyring.get_keyring()
    double = InMemoryKeyringDouble()
    keyring.set_keyring(double)
    try:
        yield double
    finally:
        keyring.set_keyring(previous)


@pytest.fixture
def vault_path(tmp_path: Path) -> Path:
    return tmp_path / "agent" / "vault.json"


@pytest.fixture
def passphrase_source() -> PassphraseKeySource:
    return PassphraseKeySource(SecretValue(PASSPHRASE), CHEAP_COST)


@pytest.fixture
def keyring_source(memory_keyring: InMemoryKeyringDouble) -> KeyringKeySource:
    return KeyringKeySource(backend=memory_keyring)
