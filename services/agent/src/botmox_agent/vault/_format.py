"""The vault file's format, version 1: a JSON document, each value sealed on its own.

    {
      "format": "botmox-agent-vault",
      "version": 1,
      "cipher": "xsalsa20-poly1305",
      "kdf": {"name": "argon2id", "salt": "<base64, 16 bytes>", "opslimit": 3, "memlimit": 268435456}
          or {"name": "keyring", "service": "botmox-agent", "username": "vault-key-<32 hex>"},
      "check": "<base64: nonce + sealed manifest>",
      "secrets": {"proxmox/pve1": "<base64: nonce + sealed (name, value)>", ...}
    }

Each value is sealed with libsodium's secretbox (XSalsa20-Poly1305, ``nacl.secret.SecretBox``) under a
fresh random 24-byte nonce. Secretbox takes no associated data, so the secret's name is sealed together
with its value (a 2-byte length, the name, the value): a value moved to another name no longer matches
its name and is refused. The key check seals the manifest (canonical JSON of format, version, cipher,
kdf and the sorted names): a wrong key fails to open it, and an altered header or an added or removed
entry no longer matches it. What the format does not detect (rolling the whole file back to an older
copy) is in docs/agent-security.md.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import json
from dataclasses import dataclass
from typing import Any, Final, Literal

import nacl.exceptions
import nacl.pwhash.argon2id as argon2id
import nacl.secret

from botmox_agent.vault._errors import VaultCorrupted, WrongKey
from botmox_agent.vault._names import validate_name
from botmox_agent.vault._secret_value import SecretValue

FORMAT: Final = "botmox-agent-vault"
VERSION: Final = 1
CIPHER: Final = "xsalsa20-poly1305"
KEY_SIZE: Final = nacl.secret.SecretBox.KEY_SIZE
MAX_FILE_SIZE: Final = 16 * 1024 * 1024
# A header is read before it is authenticated: its KDF cost is bounded so an altered file cannot make
# the agent allocate gigabytes or spin for minutes.
MAX_OPSLIMIT: Final = 20
MAX_MEMLIMIT: Final = 1024 * 1024 * 1024
_CORRUPTED_HINT: Final = "restore it from a backup (docs/agent-security.md); it was left untouched"


@dataclass(frozen=True, slots=True)
class Argon2idKdf:
    """The key is Argon2id(passphrase, salt) with these costs."""

    salt: bytes
    opslimit: int
    memlimit: int
    name: Literal["argon2id"] = "argon2id"

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "salt": _b64(self.salt),
            "opslimit": self.opslimit,
            "memlimit": self.memlimit,
        }


@dataclass(frozen=True, slots=True)
class KeyringKdf:
    """The key is a random 32-byte key stored in the OS keyring under (service, username)."""

    service: str
    username: str
    name: Literal["keyring"] = "keyring"

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "service": self.service, "username": self.username}


Kdf = Argon2idKdf | KeyringKdf


@dataclass(frozen=True, slots=True)
class VaultDocument:
    """A parsed, not yet authenticated vault file: the header and the sealed values by name."""

    kdf: Kdf
    check: bytes
    sealed: dict[str, bytes]


def parse(data: bytes, path: str) -> VaultDocument:
    """Parses the file's bytes; raises VaultCorrupted for anything that is not a version-1 vault."""

    def corrupted(what: str) -> VaultCorrupted:
        return VaultCorrupted(f"the vault {path} is corrupted ({what}); {_CORRUPTED_HINT}")

    try:
        document = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise corrupted("not JSON") from None
    if not isinstance(document, dict) or document.get("format") != FORMAT:
        raise corrupted("not a botmox-agent vault")
    if document.get("version") != VERSION:
        raise VaultCorrupted(
            f"the vault {path} has format version {document.get('version')!r}; this agent reads version "
            f"{VERSION}: upgrade botmox-agent, or restore a backup"
        )
    if set(document) != {"format", "version", "cipher", "kdf", "check", "secrets"}:
        raise corrupted("unexpected or missing fields")
    if document["cipher"] != CIPHER:
        raise corrupted(f"unknown cipher {document['cipher']!r}")
    try:
        kdf = _parse_kdf(document["kdf"])
        check = _unb64(document["check"])
        secrets = document["secrets"]
        if not isinstance(secrets, dict):
            raise ValueError("secrets is not an object")
        sealed = {validate_name(name): _unb64(value) for name, value in secrets.items()}
    except (ValueError, TypeError, KeyError) as error:
        # The message of these errors describes structure (field names), never a value.
        raise corrupted(f"malformed header or entry: {type(error).__name__}") from None
    return VaultDocument(kdf=kdf, check=check, sealed=sealed)


def serialize(document: VaultDocument) -> bytes:
    body = {
        "format": FORMAT,
        "version": VERSION,
        "cipher": CIPHER,
        "kdf": document.kdf.to_json(),
        "check": _b64(document.check),
        "secrets": {name: _b64(document.sealed[name]) for name in sorted(document.sealed)},
    }
    return (json.dumps(body, indent=2) + "\n").encode()


def seal_check(key: bytes, kdf: Kdf, names: list[str]) -> bytes:
    return bytes(nacl.secret.SecretBox(key).encrypt(_manifest(kdf, names)))


def verify_check(key: bytes, document: VaultDocument, path: str) -> None:
    """Raises WrongKey if the key does not open the check, VaultCorrupted if the manifest differs."""
    try:
        manifest = nacl.secret.SecretBox(key).decrypt(document.check)
    except nacl.exceptions.CryptoError:
        raise WrongKey(
            f"the key does not open the vault {path}: a wrong passphrase, another keyring entry, or an "
            "altered header; try again with the right passphrase (BOTMOX_AGENT_VAULT_PASSPHRASE)"
        ) from None
    if not hmac.compare_digest(manifest, _manifest(document.kdf, sorted(document.sealed))):
        raise VaultCorrupted(
            f"the vault {path} is corrupted (its header or its list of secrets was altered); "
            f"{_CORRUPTED_HINT}"
        )


def seal_value(key: bytes, name: str, value: SecretValue) -> bytes:
    encoded_name = name.encode()
    plaintext = len(encoded_name).to_bytes(2, "big") + encoded_name + value.reveal().encode()
    return bytes(nacl.secret.SecretBox(key).encrypt(plaintext))


def open_value(key: bytes, name: str, sealed: bytes, path: str) -> SecretValue:
    """Opens one entry; raises VaultCorrupted if it was altered or belongs to another name."""
    try:
        plaintext = nacl.secret.SecretBox(key).decrypt(sealed)
    except nacl.exceptions.CryptoError:
        raise VaultCorrupted(
            f"the vault {path} is corrupted (the value of {name!r} was altered); {_CORRUPTED_HINT}"
        ) from None
    size = int.from_bytes(plaintext[:2], "big")
    if plaintext[2 : 2 + size] != name.encode():
        raise VaultCorrupted(
            f"the vault {path} is corrupted (the value stored under {name!r} belongs to another name); "
            f"{_CORRUPTED_HINT}"
        )
    try:
        return SecretValue(plaintext[2 + size :].decode())
    except UnicodeDecodeError:
        raise VaultCorrupted(f"the vault {path} is corrupted (entry {name!r})") from None


def _manifest(kdf: Kdf, names: list[str]) -> bytes:
    body = {"format": FORMAT, "version": VERSION, "cipher": CIPHER, "kdf": kdf.to_json(), "names": names}
    return json.dumps(body, sort_keys=True, separators=(",", ":")).encode()


def _parse_kdf(raw: object) -> Kdf:
    if not isinstance(raw, dict):
        raise ValueError("kdf is not an object")
    if raw.get("name") == "argon2id" and set(raw) == {"name", "salt", "opslimit", "memlimit"}:
        salt, opslimit, memlimit = _unb64(raw["salt"]), raw["opslimit"], raw["memlimit"]
        if len(salt) != argon2id.SALTBYTES:
            raise ValueError("salt size")
        if not isinstance(opslimit, int) or not argon2id.OPSLIMIT_MIN <= opslimit <= MAX_OPSLIMIT:
            raise ValueError("opslimit out of range")
        if not isinstance(memlimit, int) or not argon2id.MEMLIMIT_MIN <= memlimit <= MAX_MEMLIMIT:
            raise ValueError("memlimit out of range")
        return Argon2idKdf(salt=salt, opslimit=opslimit, memlimit=memlimit)
    if raw.get("name") == "keyring" and set(raw) == {"name", "service", "username"}:
        service, username = raw["service"], raw["username"]
        if not isinstance(service, str) or not isinstance(username, str) or not service or not username:
            raise ValueError("keyring service or username")
        return KeyringKdf(service=service, username=username)
    raise ValueError("unknown kdf")


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _unb64(text: object) -> bytes:
    if not isinstance(text, str):
        raise TypeError("not a base64 string")
    try:
        return base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError):
        raise ValueError("not base64") from None
