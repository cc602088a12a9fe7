"""The vault's errors: one hierarchy, every message safe to print.

A message names the vault file or a secret's name and says what to do; it never contains a secret's value,
a passphrase or key material, so any of them may be logged or shown as is. The command line maps each class
to its exit code (``botmox_agent.vault._cli``).

    VaultError
    ├── VaultNotFound          the file does not exist
    ├── VaultAlreadyExists     creating over an existing file
    ├── VaultCorrupted         not a vault, an unknown format, or altered (tamper detected)
    ├── WrongKey               the key (passphrase or keyring entry) does not open this vault
    ├── KeySourceUnavailable   no OS keyring, no keyring entry, or no passphrase given
    ├── InsecurePermissions    the file is readable or writable by others, or owned by another user
    ├── VaultBusy              another process holds the vault's lock
    ├── VaultChanged           the vault was re-keyed by another process since it was opened
    ├── SecretNotFound         no secret of that name
    └── InvalidSecretName      a name or reference that breaks the naming rule
"""

from __future__ import annotations


class VaultError(Exception):
    """Base class of every vault error; ``str(error)`` is safe to show and to log."""


class VaultNotFound(VaultError):
    """The vault file does not exist."""


class VaultAlreadyExists(VaultError):
    """A vault file already exists where a new one was to be created."""


class VaultCorrupted(VaultError):
    """The file is not a vault this version can read, or it was altered; it is left untouched."""


class WrongKey(VaultError):
    """The key does not open the vault: a wrong passphrase, another keyring entry, or an altered header."""


VaultLocked = WrongKey
"""Alias: a vault that the given key cannot open stays locked."""


class KeySourceUnavailable(VaultError):
    """The key cannot be obtained: no OS keyring, its entry is missing, or no passphrase was given."""


class InsecurePermissions(VaultError):
    """The vault file is open to other users; it is refused rather than silently fixed."""


class VaultBusy(VaultError):
    """Another process held the vault's lock for longer than the wait allowed."""


class VaultChanged(VaultError):
    """Another process re-keyed the vault after it was opened here; open it again."""


class SecretNotFound(VaultError):
    """No secret of that name in the vault."""


class InvalidSecretName(VaultError, ValueError):
    """A secret name or ``secret://`` reference that breaks the naming rule."""
