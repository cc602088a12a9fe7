"""What runs a command on the agent: the seam between the tunnel's runtime and the executors.

The runtime (``botmox_agent.runtime``) receives a ``command`` frame, validates its params against the
protocol's registry (``botmox_protocol.COMMAND_KINDS``), journals it, and hands the typed params to an
:class:`Executors` implementation; it never knows how SyncThing or Proxmox are reached. An executor
returns the result's JSON data, or raises :class:`CommandFailed` with a code and a message for the
result frame. Neither a code nor a message ever holds a secret's value (they reach the control plane).

Public API: :class:`Executors` (the protocol), :class:`CommandFailed`, :data:`Progress`,
:data:`SecretResolver`; :class:`ExecutorSettings` and :func:`build_executors` (the SyncThing and
Proxmox VE executors: docs/agent-executors.md), :func:`command_deadline`.
"""

from __future__ import annotations

from botmox_agent.executors._contract import CommandFailed, Executors, Progress, SecretResolver
from botmox_agent.executors._deadline import command_deadline
from botmox_agent.executors._dispatch import build_executors
from botmox_agent.executors._settings import (
    DEFAULT_SYNCTHING_URL,
    SYNCTHING_API_KEY_REF,
    ExecutorSettings,
)

__all__ = [
    "DEFAULT_SYNCTHING_URL",
    "SYNCTHING_API_KEY_REF",
    "CommandFailed",
    "ExecutorSettings",
    "Executors",
    "Progress",
    "SecretResolver",
    "build_executors",
    "command_deadline",
]
