"""``run``'s account of itself in status.json, rewritten on every change of connection state and after
every command, for ``botmox-agent status`` (another process) to read. A failed write is logged and
the agent goes on: the file informs, it does not steer."""

from __future__ import annotations

import dataclasses
import os
from datetime import UTC, datetime

from botmox_agent.runtime._logging import AgentLog
from botmox_agent.runtime._state import AgentStatus, StateDir, StateError

# The states written; `status` reads `connected` as healthy.
STARTING = "starting"
CONNECTING = "connecting"
CONNECTED = "connected"
DISCONNECTED = "disconnected"
STOPPED = "stopped"


class StatusRecorder:
    def __init__(self, state: StateDir, *, server_url: str, agent_id: str, log: AgentLog) -> None:
        self._state = state
        self._log = log
        self.current = AgentStatus(
            pid=os.getpid(), state=STARTING, updated_at=_now(), server_url=server_url, agent_id=agent_id
        )
        self._write()

    def connecting(self, *, reconnect: bool) -> None:
        self._change(state=CONNECTING, reconnects=self.current.reconnects + int(reconnect))

    def connected(self) -> None:
        self._change(state=CONNECTED, last_connected_at=_now())

    def disconnected(self, close_code: int | None) -> None:
        self._change(state=DISCONNECTED, last_disconnected_at=_now(), last_close_code=close_code)

    def command_finished(self) -> None:
        self._change(commands_run=self.current.commands_run + 1)

    def stopped(self) -> None:
        self._change(state=STOPPED)

    def _change(self, **changes: object) -> None:
        self.current = dataclasses.replace(self.current, updated_at=_now(), **changes)  # type: ignore[arg-type]
        self._write()

    def _write(self) -> None:
        try:
            self._state.write_status(self.current)
        except StateError as error:
            self._log.warning("status.write_failed", error=str(error))


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
