"""A Proxmox VE host's vault entry: its URL and API token, read from JSON text.

``secret://proxmox/<name>`` holds
``{"url": "https://pve1:8006", "token_id": "user@pam!botmox", "token_secret": "...",
"verify_tls": true}`` and optionally ``"ca_file": "/path/to/ca.pem"``. A malformed entry is refused
with CREDENTIAL_INVALID naming the entry and the field, never quoting the text (it holds the token).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final
from urllib.parse import urlsplit

from botmox_agent.executors._contract import CommandFailed
from botmox_agent.vault import SecretRef, SecretValue

# user@realm!tokenname (pveum's rule for the token's name: a letter, then letters, digits, - _ .).
_TOKEN_ID: Final = re.compile(r"^[^\s@!:=]+@[A-Za-z][A-Za-z0-9._-]*![A-Za-z][A-Za-z0-9._-]*$")
# The secret is a UUID in practice; anything printable without spaces would fit in the header.
_TOKEN_SECRET: Final = re.compile(r"^[\x21-\x7e]+$")
_FIELDS: Final = frozenset({"url", "token_id", "token_secret", "verify_tls", "ca_file"})


@dataclass(frozen=True, slots=True)
class ProxmoxHost:
    """A host to call: ``url`` (scheme, host, port; no path), how to check its TLS, and its token."""

    url: str
    token_id: str
    token_secret: SecretValue
    verify_tls: bool
    ca_file: Path | None

    def authorization(self) -> str:
        """The ``Authorization`` header's value: ``PVEAPIToken=<token_id>=<token_secret>``."""
        return f"PVEAPIToken={self.token_id}={self.token_secret.reveal()}"


def parse_host(ref: SecretRef, value: SecretValue) -> ProxmoxHost:
    """The host in the vault entry ``ref``; ``CommandFailed`` CREDENTIAL_INVALID when malformed."""

    def invalid(problem: str) -> CommandFailed:
        return CommandFailed(
            "CREDENTIAL_INVALID",
            f"the vault entry {ref} is not a Proxmox credential: {problem} (expected JSON "
            '{"url": "https://host:8006", "token_id": "user@realm!name", "token_secret": "...", '
            '"verify_tls": true}, optionally "ca_file")',
        )

    try:
        document: Any = json.loads(value.reveal())
    except ValueError:
        raise invalid("not JSON text") from None
    if not isinstance(document, dict):
        raise invalid("not a JSON object")
    unknown = sorted(set(document) - _FIELDS)
    if unknown:
        # Names of keys only, cut short: a key could be a pasted value.
        raise invalid(f"{len(unknown)} unknown field(s)")
    url = document.get("url")
    if not isinstance(url, str):
        raise invalid('"url" is missing or not a string')
    parts = urlsplit(url)
    if parts.scheme not in ("https", "http") or not parts.hostname or parts.username or parts.password:
        raise invalid('"url" is not an http(s)://host[:port] URL without user information')
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise invalid('"url" has a path, query or fragment (give only https://host:port)')
    token_id = document.get("token_id")
    if not isinstance(token_id, str) or not _TOKEN_ID.fullmatch(token_id):
        raise invalid('"token_id" is missing or not user@realm!tokenname')
    token_secret = document.get("token_secret")
    if not isinstance(token_secret, str) or not _TOKEN_SECRET.fullmatch(token_secret):
        raise invalid('"token_secret" is missing, empty or holds spaces or control characters')
    verify_tls = document.get("verify_tls", True)
    if not isinstance(verify_tls, bool):
        raise invalid('"verify_tls" is not true or false')
    ca_file = document.get("ca_file")
    if ca_file is not None and (not isinstance(ca_file, str) or not ca_file):
        raise invalid('"ca_file" is not a path')
    return ProxmoxHost(
        url=f"{parts.scheme}://{parts.netloc}",
        token_id=token_id,
        token_secret=SecretValue(token_secret),
        verify_tls=verify_tls,
        ca_file=Path(ca_file) if ca_file is not None else None,
    )
