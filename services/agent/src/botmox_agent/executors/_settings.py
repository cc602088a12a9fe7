"""``ExecutorSettings``: what the executors need to know, mapped by the runtime from the agent's settings."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Final

from botmox_agent.vault import SecretRef

SYNCTHING_API_KEY_REF: Final = SecretRef("syncthing/api-key")
DEFAULT_SYNCTHING_URL: Final = "http://127.0.0.1:8384"


@dataclass(frozen=True, slots=True)
class ExecutorSettings:
    """How to reach SyncThing and Proxmox VE.

    ``syncthing_url`` ``None`` leaves the SyncThing kinds out of the agent's capabilities. Its API key
    is read from the vault at ``syncthing_api_key`` for every command, so a rotated key is picked up
    without a restart. ``ca_file`` is a PEM bundle trusted for https (SyncThing, and every Proxmox host
    whose vault entry names no ``ca_file`` of its own); ``None`` trusts the usual public CAs.
    """

    syncthing_url: str | None = DEFAULT_SYNCTHING_URL
    syncthing_api_key: SecretRef = SYNCTHING_API_KEY_REF
    ca_file: Path | None = None
    # One HTTP request (connect, read, write, pool), in seconds.
    request_timeout: float = 10.0
    # The longest wait for a Proxmox task (start, stop, clone) when the command carries no deadline.
    proxmox_task_timeout: float = 900.0
    # Between two polls of a running Proxmox task, and between two progress reports while it runs.
    proxmox_poll_interval: float = 1.0
    proxmox_progress_interval: float = 5.0

    def __post_init__(self) -> None:
        for name in ("request_timeout", "proxmox_task_timeout", "proxmox_progress_interval"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be positive")
        if self.proxmox_poll_interval < 0:
            raise ValueError("proxmox_poll_interval must not be negative")
        if self.syncthing_url is not None and not self.syncthing_url.startswith(("http://", "https://")):
            raise ValueError("syncthing_url must be an http:// or https:// URL")
