"""The agent's local secret vault: one file, each value sealed, the key in the OS keyring or a passphrase.

Public API (the modules behind it are private):

- :class:`Vault` (``create``, ``open``, ``names``, ``get``, ``set``, ``delete``, ``rotate_key``),
  :func:`key_kind`, :func:`default_vault_path`;
- key sources: :class:`KeyringKeySource`, :class:`PassphraseKeySource` with :data:`KDF_COSTS`;
- :class:`SecretValue` (redacted repr) and :class:`SecretRef` (``secret://name``);
- the errors, all subclasses of :class:`VaultError` (``_errors.py`` draws the tree).

The file format is in ``_format.py``, the threat model in docs/agent-security.md.
"""

from botmox_agent.vault._errors import (
    InsecurePermissions,
    InvalidSecretName,
    KeySourceUnavailable,
    SecretNotFound,
    VaultAlreadyExists,
    VaultBusy,
    VaultChanged,
    VaultCorrupted,
    VaultError,
    VaultLocked,
    VaultNotFound,
    WrongKey,
)
from botmox_agent.vault._keys import (
    DEFAULT_KDF_COST,
    KDF_COSTS,
    KEYRING_SERVICE,
    PASSPHRASE_ENV,
    KdfCost,
    KeyringKeySource,
    KeySource,
    PassphraseKeySource,
)
from botmox_agent.vault._names import SCHEME, SecretRef, validate_name
from botmox_agent.vault._secret_value import SecretValue
from botmox_agent.vault._storage import default_vault_path
from botmox_agent.vault._vault import Vault, key_kind

__all__ = [
    "DEFAULT_KDF_COST",
    "KDF_COSTS",
    "KEYRING_SERVICE",
    "PASSPHRASE_ENV",
    "SCHEME",
    "InsecurePermissions",
    "InvalidSecretName",
    "KdfCost",
    "KeySource",
    "KeySourceUnavailable",
    "KeyringKeySource",
    "PassphraseKeySource",
    "SecretNotFound",
    "SecretRef",
    "SecretValue",
    "Vault",
    "VaultAlreadyExists",
    "VaultBusy",
    "VaultChanged",
    "VaultCorrupted",
    "VaultError",
    "VaultLocked",
    "VaultNotFound",
    "WrongKey",
    "default_vault_path",
    "key_kind",
    "validate_name",
]
