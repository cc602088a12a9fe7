"""The agent's settings: the ``BOTMOX_AGENT_*`` variables, read once into a frozen ``AgentSettings``.

The vault's variables keep their names from the vault's command line (``BOTMOX_AGENT_VAULT``,
``BOTMOX_AGENT_VAULT_PASSPHRASE``) and its default file; the state directory defaults to the vault's
directory. Secrets (the passphrase, a pairing code) are ``SecretStr``: their repr is redacted.
"""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from botmox_agent.vault import default_vault_path

KeySourceName = Literal["keyring", "passphrase"]


def _default_state_dir() -> Path:
    return default_vault_path().parent


class AgentSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="BOTMOX_AGENT_", frozen=True, extra="ignore")

    # identity.json, the command journal and status.json.
    state_dir: Path = Field(default_factory=_default_state_dir)
    # The vault file, and where a new vault's key lives (an existing vault's file says which).
    vault: Path = Field(default_factory=default_vault_path)
    key_source: KeySourceName = "keyring"
    vault_passphrase: SecretStr | None = None
    # The control plane's base URL; overrides the one recorded at pairing.
    server_url: str | None = None
    # `run` pairs with it when the state directory holds no identity; ignored once paired.
    pairing_code: SecretStr | None = None
    name: str = Field(default_factory=socket.gethostname, min_length=1, max_length=100)
    # A PEM bundle trusted for https/wss besides the system's CAs (a private CA).
    ca_file: Path | None = None
    # host:port of the local /metrics and /healthz server; unset: no server.
    http_address: str | None = None
    # The agent's SyncThing; empty: no SyncThing kinds.
    syncthing_url: str = "http://127.0.0.1:8384"

    @field_validator(
        "vault_passphrase", "server_url", "pairing_code", "ca_file", "http_address", mode="before"
    )
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        return None if value == "" else value

    @field_validator("server_url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        return None if value is None else check_server_url(value)

    @field_validator("syncthing_url")
    @classmethod
    def _syncthing_url(cls, value: str) -> str:
        if value and not value.startswith(("http://", "https://")):
            raise ValueError("the SyncThing URL is http(s)://host:port, or empty for no SyncThing")
        return value

    @field_validator("http_address")
    @classmethod
    def _host_port(cls, value: str | None) -> str | None:
        if value is not None:
            parse_address(value)
        return value


def check_server_url(url: str) -> str:
    """An http(s) base URL without query or fragment, without its trailing slash; ValueError else."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("the server URL must be http(s)://host[:port][/path]")
    if parts.query or parts.fragment or parts.username or parts.password:
        raise ValueError("the server URL takes no query, fragment or user information")
    return url.rstrip("/")


def parse_address(address: str) -> tuple[str, int]:
    """``host:port`` (``[::1]:port`` for IPv6) as a pair; ValueError else."""
    host, sep, port = address.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError("the HTTP address is host:port, e.g. 127.0.0.1:9465")
    return host.strip("[]"), int(port)
