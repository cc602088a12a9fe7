"""The seam's types: the ``Executors`` protocol, ``CommandFailed``, ``Progress``, ``SecretResolver``.

Their own module so the executors' modules import them without going through the package's
``__init__`` (which imports those modules).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Protocol

from pydantic import BaseModel, JsonValue

from botmox_agent.vault import SecretRef, SecretValue

Progress = Callable[[int | None, str | None], Awaitable[None]]
"""Report progress on the running command: a percent (0 to 100) and/or a short message, no secrets."""

SecretResolver = Callable[[SecretRef], SecretValue]
"""Read a vault entry by reference (``secret://proxmox/pve1``); raises the vault's errors."""


class CommandFailed(Exception):
    """The command ran (or tried to) and failed: ``code`` (``^[A-Z][A-Z0-9_]{0,63}$``) and a message
    for the tenant, both free of secrets."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


class Executors(Protocol):
    """The command kinds this agent can run, and running them."""

    def kinds(self) -> frozenset[str]:
        """The kinds declared as capabilities in ``hello`` (a subset of ``COMMAND_KINDS``)."""
        ...

    async def run(self, kind: str, params: BaseModel, progress: Progress) -> JsonValue:
        """Run one command of ``kind`` with its validated params; its JSON data, or ``CommandFailed``."""
        ...

    async def aclose(self) -> None:
        """Release connections; called once when the agent stops."""
        ...
