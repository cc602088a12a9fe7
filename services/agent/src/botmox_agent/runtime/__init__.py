"""The agent's runtime: settings, pairing, the tunnel to the control plane, the command journal, the
local HTTP server (metrics, health) and the ``pair`` / ``run`` / ``status`` commands.

Public API (the modules behind it are private, one concern each):

- :class:`AgentSettings` (the ``BOTMOX_AGENT_*`` variables);
- :func:`register_commands` (adds ``pair``, ``run``, ``status`` to a Typer app, with an
  :data:`ExecutorsFactory`), :func:`production_executors`;
- :func:`run_agent` with :class:`RunOptions`, :class:`TunnelEnded`; :func:`pair` with
  :class:`PairingRequest` and the :class:`PairingError` family;
- :class:`SqliteJournal`, :class:`StateDir`, :class:`Identity`, :data:`CREDENTIAL_REF`.
"""

from botmox_agent.runtime._cli import register_commands
from botmox_agent.runtime._credential import CREDENTIAL_REF
from botmox_agent.runtime._executors_wiring import ExecutorsFactory, production_executors
from botmox_agent.runtime._journal import SqliteJournal
from botmox_agent.runtime._pairing import (
    AlreadyPaired,
    CodeRefused,
    PairingError,
    PairingRequest,
    ServerRefused,
    ServerUnreachable,
    pair,
)
from botmox_agent.runtime._service import AGENT_VERSION, NotPaired, RunOptions, run_agent
from botmox_agent.runtime._settings import AgentSettings
from botmox_agent.runtime._state import Identity, StateDir
from botmox_agent.runtime._tunnel import TunnelEnded, ws_url

__all__ = [
    "AGENT_VERSION",
    "CREDENTIAL_REF",
    "AgentSettings",
    "AlreadyPaired",
    "CodeRefused",
    "ExecutorsFactory",
    "Identity",
    "NotPaired",
    "PairingError",
    "PairingRequest",
    "RunOptions",
    "ServerRefused",
    "ServerUnreachable",
    "SqliteJournal",
    "StateDir",
    "TunnelEnded",
    "pair",
    "production_executors",
    "register_commands",
    "run_agent",
    "ws_url",
]
