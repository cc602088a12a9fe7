"""Which executors the agent runs: the one place that maps ``AgentSettings`` onto ``ExecutorSettings``.

``run`` and ``pair`` take an ``ExecutorsFactory``; the command line passes ``production_executors``,
tests their own.
"""

from __future__ import annotations

from collections.abc import Callable

from botmox_agent.executors import Executors, ExecutorSettings, SecretResolver, build_executors
from botmox_agent.runtime._settings import AgentSettings

ExecutorsFactory = Callable[[AgentSettings, SecretResolver], Executors]


def executor_settings(settings: AgentSettings) -> ExecutorSettings:
    # An empty BOTMOX_AGENT_SYNCTHING_URL leaves the SyncThing kinds out; the CA file is trusted for
    # SyncThing and for every Proxmox host whose vault entry names none of its own.
    return ExecutorSettings(syncthing_url=settings.syncthing_url or None, ca_file=settings.ca_file)


def production_executors(settings: AgentSettings, secrets: SecretResolver) -> Executors:
    """The SyncThing and Proxmox VE executors (docs/agent-executors.md)."""
    return build_executors(executor_settings(settings), secrets)
