"""``Vault``: create, open, read and change the vault file under one key.

Opening reads the file, finds the key from its header through the key source, checks the key and the
manifest, and opens every entry, so a wrong key or any altered byte is refused before anything else
happens. Every change takes the writers' lock, reads the file again (another process may have written
since), verifies it again, applies the change and replaces the file atomically: a file that fails
verification is never written over.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Final

from botmox_agent.vault import _format, _storage
from botmox_agent.vault._errors import (
    SecretNotFound,
    VaultAlreadyExists,
    VaultChanged,
    VaultCorrupted,
    WrongKey,
)
from botmox_agent.vault._format import Kdf, VaultDocument
from botmox_agent.vault._keys import KeySource
from botmox_agent.vault._names import SecretRef, validate_name
from botmox_agent.vault._secret_value import SecretValue

# Names only, never values; no handler is configured here (the agent's entry point decides).
logger: Final = logging.getLogger("botmox_agent.vault")


def key_kind(path: Path) -> str:
    """``"passphrase"`` or ``"keyring"``: which key source sealed the vault at ``path`` (unverified)."""
    kdf = _format.parse(_storage.read_vault_file(path), str(path)).kdf
    return "passphrase" if isinstance(kdf, _format.Argon2idKdf) else "keyring"


class Vault:
    """An open vault. Build it with :meth:`create` or :meth:`open`; it holds the key, not the values."""

    def __init__(self, path: Path, key_source: KeySource, kdf: Kdf, key: bytes, lock_timeout: float) -> None:
        self._path = path
        self._key_source = key_source
        self._kdf = kdf
        self._key = key
        self._lock_timeout = lock_timeout

    def __repr__(self) -> str:
        return f"Vault({str(self._path)!r}, key_source={self._key_source!r})"

    @property
    def path(self) -> Path:
        return self._path

    @property
    def key_kind(self) -> str:
        return self._key_source.kind

    @classmethod
    def create(
        cls,
        path: Path,
        key_source: KeySource,
        lock_timeout: float = _storage.DEFAULT_LOCK_TIMEOUT,
    ) -> Vault:
        """A new, empty vault at ``path``; raises VaultAlreadyExists if a file is there."""
        with _storage.writer_lock(path, lock_timeout):
            if path.exists() or path.is_symlink():
                raise VaultAlreadyExists(f"a vault already exists at {path}; open it instead")
            kdf, key = key_source.new_key()
            try:
                document = VaultDocument(kdf=kdf, check=_format.seal_check(key, kdf, []), sealed={})
                _storage.write_atomically(path, _format.serialize(document))
            except BaseException:
                key_source.discard(kdf)
                raise
        logger.info("vault created", extra={"vault": str(path), "key_source": key_source.kind})
        return cls(path, key_source, kdf, key, lock_timeout)

    @classmethod
    def open(
        cls,
        path: Path,
        key_source: KeySource,
        lock_timeout: float = _storage.DEFAULT_LOCK_TIMEOUT,
    ) -> Vault:
        """Opens and verifies the vault at ``path``: the key, the manifest and every entry."""
        document = _format.parse(_storage.read_vault_file(path), str(path))
        key = key_source.key_for(document.kdf, str(path))
        vault = cls(path, key_source, document.kdf, key, lock_timeout)
        vault._verify(document)
        return vault

    def names(self) -> list[str]:
        """The secrets' names, sorted."""
        return sorted(self._read().sealed)

    def get(self, name: str | SecretRef) -> SecretValue:
        name = _name_of(name)
        document = self._read()
        sealed = document.sealed.get(name)
        if sealed is None:
            raise SecretNotFound(f"no secret {name!r} in the vault {self._path}; `botmox-agent vault list`")
        return _format.open_value(self._key, name, sealed, str(self._path))

    def set(self, name: str | SecretRef, value: SecretValue) -> None:
        """Stores (or replaces) the secret ``name``."""
        name = _name_of(name)
        if not isinstance(value, SecretValue):
            raise TypeError("a vault value is a SecretValue")
        with _storage.writer_lock(self._path, self._lock_timeout):
            document = self._read()
            sealed = {**document.sealed, name: _format.seal_value(self._key, name, value)}
            self._write(sealed)
        logger.info("secret set", extra={"vault": str(self._path), "secret": name})

    def delete(self, name: str | SecretRef) -> None:
        """Removes the secret ``name``; raises SecretNotFound if there is none."""
        name = _name_of(name)
        with _storage.writer_lock(self._path, self._lock_timeout):
            document = self._read()
            if name not in document.sealed:
                raise SecretNotFound(f"no secret {name!r} in the vault {self._path}")
            self._write({other: sealed for other, sealed in document.sealed.items() if other != name})
        logger.info("secret deleted", extra={"vault": str(self._path), "secret": name})

    def rotate_key(self, new_source: KeySource) -> None:
        """Re-seals every secret under a new key from ``new_source``, in one atomic replacement.

        The old key is forgotten (its keyring entry removed) only after the new file is in place; if
        anything fails before, the vault is unchanged and a new keyring entry is removed again.
        """
        with _storage.writer_lock(self._path, self._lock_timeout):
            document = self._read()
            values = {
                name: _format.open_value(self._key, name, sealed, str(self._path))
                for name, sealed in document.sealed.items()
            }
            new_kdf, new_key = new_source.new_key()
            try:
                sealed = {name: _format.seal_value(new_key, name, value) for name, value in values.items()}
                rotated = VaultDocument(
                    kdf=new_kdf, check=_format.seal_check(new_key, new_kdf, sorted(sealed)), sealed=sealed
                )
                _storage.write_atomically(self._path, _format.serialize(rotated))
            except BaseException:
                new_source.discard(new_kdf)
                raise
            old_source, old_kdf = self._key_source, self._kdf
            self._key_source, self._kdf, self._key = new_source, new_kdf, new_key
        old_source.discard(old_kdf)
        logger.info(
            "vault key rotated",
            extra={"vault": str(self._path), "key_source": new_source.kind, "secrets": len(values)},
        )

    def _read(self) -> VaultDocument:
        document = _format.parse(_storage.read_vault_file(self._path), str(self._path))
        if document.kdf != self._kdf:
            raise VaultChanged(
                f"the vault {self._path} was re-keyed by another process since it was opened; open it again"
            )
        try:
            self._verify(document)
        except WrongKey:
            # This key opened the vault before, and the header names the same key: the file was altered.
            raise VaultCorrupted(
                f"the vault {self._path} is corrupted (its key check was altered since it was opened); "
                "restore it from a backup (docs/agent-security.md); it was left untouched"
            ) from None
        return document

    def _verify(self, document: VaultDocument) -> None:
        _format.verify_check(self._key, document, str(self._path))
        for name, sealed in document.sealed.items():
            _format.open_value(self._key, name, sealed, str(self._path))

    def _write(self, sealed: dict[str, bytes]) -> None:
        document = VaultDocument(
            kdf=self._kdf, check=_format.seal_check(self._key, self._kdf, sorted(sealed)), sealed=sealed
        )
        _storage.write_atomically(self._path, _format.serialize(document))


def _name_of(name: str | SecretRef) -> str:
    return name.name if isinstance(name, SecretRef) else validate_name(SecretRef.parse(name).name)
