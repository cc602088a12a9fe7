"""Which executors the agent runs: the one place that maps ``AgentSettings`` onto the executors.

``run`` and ``pair`` take an ``ExecutorsFactory``; the command line passes ``production_executors``,
tests their own.
"""

from __future__ import annotations

from collections.abc import Callable

from pydantic import BaseModel, JsonValue

from botmox_agent.executors import CommandFailed, Executors, Progress, SecretResolver
from botmox_agent.runtime._settings import AgentSettings

ExecutorsFactory = Callable[[AgentSettings, SecretResolver], Executors]


class NoExecutors:
    """Runs nothing and declares no kind: the agent connects, and the server sends it no command."""

    def kinds(self) -> frozenset[str]:
        return frozenset()

    async def run(self, kind: str, params: BaseModel, progress: Progress) -> JsonValue:
        raise CommandFailed("UNSUPPORTED_KIND", f"this agent does not run {kind}")

    async def aclose(self) -> None:
        return None


def production_executors(settings: AgentSettings, secrets: SecretResolver) -> Executors:
    return NoExecutors()
