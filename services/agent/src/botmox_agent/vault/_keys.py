"""Where the vault's key comes from: the OS keyring, or a passphrase through Argon2id.

A key source makes a new key (creating a vault, rotating its key) and finds the key again from a vault's
header (opening it). The header records which source sealed the vault and its parameters (the Argon2id
salt and costs, or the keyring's service and entry), never the key.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import secrets
from dataclasses import dataclass
from typing import Final, Protocol

import keyring
import keyring.backend
import keyring.errors
import nacl.pwhash.argon2id as argon2id
import nacl.utils

from botmox_agent.vault._errors import KeySourceUnavailable, WrongKey
from botmox_agent.vault._format import KEY_SIZE, Argon2idKdf, Kdf, KeyringKdf
from botmox_agent.vault._secret_value import SecretValue

KEYRING_SERVICE: Final = "botmox-agent"
PASSPHRASE_ENV: Final = "BOTMOX_AGENT_VAULT_PASSPHRASE"  # noqa: S105 - a variable's name
NO_KEYRING_HINT: Final = (
    "no OS keyring is available on this machine (a headless server has no Secret Service); use a "
    "passphrase instead: --key-source passphrase, the passphrase from the prompt or from "
    f"{PASSPHRASE_ENV}"
)


@dataclass(frozen=True, slots=True)
class KdfCost:
    """Argon2id's cost: passes over memory (opslimit) and bytes of memory (memlimit)."""

    opslimit: int
    memlimit: int


KDF_COSTS: Final = {
    "interactive": KdfCost(argon2id.OPSLIMIT_INTERACTIVE, argon2id.MEMLIMIT_INTERACTIVE),  # 2, 64 MiB
    "moderate": KdfCost(argon2id.OPSLIMIT_MODERATE, argon2id.MEMLIMIT_MODERATE),  # 3, 256 MiB
    "sensitive": KdfCost(argon2id.OPSLIMIT_SENSITIVE, argon2id.MEMLIMIT_SENSITIVE),  # 4, 1 GiB
}
DEFAULT_KDF_COST: Final = KDF_COSTS["moderate"]


class KeySource(Protocol):
    """Makes a new key with the header that finds it again, and finds the key from a header."""

    kind: str

    def new_key(self) -> tuple[Kdf, bytes]: ...

    def key_for(self, kdf: Kdf, path: str) -> bytes: ...

    def discard(self, kdf: Kdf) -> None:
        """Forgets a key that no longer seals anything (after a rotation); best effort."""


class PassphraseKeySource:
    """The key is Argon2id(passphrase, a random salt); the salt and the costs go in the header."""

    kind = "passphrase"

    def __init__(self, passphrase: SecretValue, cost: KdfCost = DEFAULT_KDF_COST) -> None:
        if not passphrase:
            raise KeySourceUnavailable(
                f"the passphrase is empty; give one at the prompt or in {PASSPHRASE_ENV}"
            )
        self._passphrase = passphrase
        self._cost = cost

    def __repr__(self) -> str:
        return f"PassphraseKeySource(cost={self._cost!r})"

    def new_key(self) -> tuple[Kdf, bytes]:
        kdf = Argon2idKdf(
            salt=nacl.utils.random(argon2id.SALTBYTES),
            opslimit=self._cost.opslimit,
            memlimit=self._cost.memlimit,
        )
        return kdf, self._derive(kdf)

    def key_for(self, kdf: Kdf, path: str) -> bytes:
        if not isinstance(kdf, Argon2idKdf):
            raise WrongKey(
                f"the vault {path} is sealed with a key in the OS keyring, not a passphrase; open it "
                "without --key-source passphrase, or switch with rotate-key"
            )
        return self._derive(kdf)

    def discard(self, kdf: Kdf) -> None:
        """Nothing to forget: a passphrase's key exists only while it is derived."""

    def _derive(self, kdf: Argon2idKdf) -> bytes:
        return bytes(
            argon2id.kdf(
                KEY_SIZE,
                self._passphrase.reveal().encode(),
                kdf.salt,
                opslimit=kdf.opslimit,
                memlimit=kdf.memlimit,
            )
        )


class KeyringKeySource:
    """A random key stored in the OS keyring, one entry per key (``vault-key-<random id>``)."""

    kind = "keyring"

    def __init__(
        self, service: str = KEYRING_SERVICE, backend: keyring.backend.KeyringBackend | None = None
    ) -> None:
        self._service = service
        self._backend = backend

    def __repr__(self) -> str:
        return f"KeyringKeySource(service={self._service!r})"

    def new_key(self) -> tuple[Kdf, bytes]:
        kdf = KeyringKdf(service=self._service, username=f"vault-key-{secrets.token_hex(16)}")
        key = nacl.utils.random(KEY_SIZE)
        try:
            self._keyring().set_password(kdf.service, kdf.username, base64.b64encode(key).decode())
        except keyring.errors.KeyringError as error:
            raise self._unavailable(error) from None
        return kdf, key

    def key_for(self, kdf: Kdf, path: str) -> bytes:
        if not isinstance(kdf, KeyringKdf):
            raise KeySourceUnavailable(
                f"the vault {path} is sealed with a passphrase: give it at the prompt or in {PASSPHRASE_ENV}"
            )
        try:
            stored = self._keyring().get_password(kdf.service, kdf.username)
        except keyring.errors.KeyringError as error:
            raise self._unavailable(error) from None
        if stored is None:
            raise KeySourceUnavailable(
                f"the OS keyring has no entry {kdf.username!r} of service {kdf.service!r} for the vault "
                f"{path}: it was made on another machine or user, or the entry was removed; restore the "
                "keyring entry, or restore a passphrase-sealed backup (docs/agent-security.md)"
            )
        try:
            key = base64.b64decode(stored, validate=True)
        except (binascii.Error, ValueError):
            key = b""
        if len(key) != KEY_SIZE:
            raise WrongKey(f"the OS keyring's entry {kdf.username!r} is not a vault key of {path}")
        return key

    def discard(self, kdf: Kdf) -> None:
        if isinstance(kdf, KeyringKdf):
            # Best effort: a leftover entry opens nothing once the vault is re-sealed.
            with contextlib.suppress(keyring.errors.KeyringError):
                self._keyring().delete_password(kdf.service, kdf.username)

    def _keyring(self) -> keyring.backend.KeyringBackend:
        return self._backend if self._backend is not None else keyring.get_keyring()

    def _unavailable(self, error: keyring.errors.KeyringError) -> KeySourceUnavailable:
        backend = type(self._keyring())
        if isinstance(error, keyring.errors.NoKeyringError):
            return KeySourceUnavailable(NO_KEYRING_HINT)
        return KeySourceUnavailable(
            f"the OS keyring ({backend.__module__}.{backend.__qualname__}) failed: "
            f"{type(error).__name__}; unlock it, or use a passphrase (--key-source passphrase)"
        )
