"""Shared by the agent's tests: known secrets, a cheap Argon2id cost, an in-memory keyring test double."""

from __future__ import annotations

import keyring.backend
import keyring.errors
import nacl.pwhash.argon2id as argon2id
from keyring.compat import properties

from botmox_agent.vault import KdfCost

SECRET = "s3cr3t-Th1s-must-never-leak-7f2c"
PASSPHRASE = "correct horse battery staple"
CHEAP_COST = KdfCost(opslimit=argon2id.OPSLIMIT_MIN, memlimit=argon2id.MEMLIMIT_MIN)


class InMemoryKeyringDouble(keyring.backend.KeyringBackend):
    """Test double of an OS keyring: entries in a dict, nothing leaves the process."""

    @properties.classproperty
    def priority(cls) -> float:
        # Not viable for keyring's own discovery: it is installed only through keyring.set_keyring.
        raise RuntimeError("a test double, installed explicitly")

    def __init__(self) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self.entries: dict[tuple[str, str], str] = {}

    def get_password(self, service: str, username: str) -> str | None:
        return self.entries.get((service, username))

    def set_password(self, service: str, username: str, password: str) -> None:
        self.entries[(service, username)] = password

    def delete_password(self, service: str, username: str) -> None:
        if self.entries.pop((service, username), None) is None:
            raise keyring.errors.PasswordDeleteError(username)
