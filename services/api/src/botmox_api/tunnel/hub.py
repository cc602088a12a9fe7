"""The agent tunnels this worker holds, by agent, and what the database's notifications mean for them.

A notification names an agent; only the worker holding that agent's tunnel acts on it, the others
ignore it (``docs/contracts/agents-sql.md``, "Delivery across API workers"):

- ``command``: deliver the agent's pending commands (the new one among them) on its tunnel.
- ``revoked``: close the tunnel with 4403 at once.
- ``cancelled``: nothing to send. The protocol has no cancel frame; a command already sent runs to
  its end on the agent, whose late ack, progress or result the database then refuses (answered with an
  ``error`` frame ``OUT_OF_ORDER``), and one not sent yet is no longer pending, so it is never sent.

One tunnel per agent: when an agent connects again through this worker, the older tunnel is closed
with 4409. Through another worker, the older one learns it at its next heartbeat (``BM403 agent
connection superseded``, closed with 4409 too).
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, Final

from structlog.typing import FilteringBoundLogger

from botmox_api.agent_link import parse_notice
from botmox_api.metrics import ApiMetrics
from botmox_api.tunnel.link import AgentLink
from botmox_protocol import CloseCode

SHUTDOWN_WAIT_S: Final = 5.0


class TunnelHub:
    """Belongs to the event loop of the worker's app; notifications arrive on that loop too."""

    def __init__(self, *, metrics: ApiMetrics, logger: FilteringBoundLogger) -> None:
        self._links: dict[str, AgentLink] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._metrics = metrics
        self._log = logger

    def __len__(self) -> int:
        return len(self._links)

    def holding(self, agent_key: str) -> AgentLink | None:
        return self._links.get(agent_key)

    def attach(self, link: AgentLink) -> None:
        """``link`` is now its agent's tunnel on this worker; an older one is closed with 4409."""
        previous = self._links.get(link.key)
        self._links[link.key] = link
        self._metrics.agent_connections.inc()
        if previous is None:
            self._metrics.agents_connected.inc()
        else:
            self._spawn(previous.close(CloseCode.REPLACED, "replaced by a newer connection"))

    def detach(self, link: AgentLink) -> None:
        if self._links.get(link.key) is link:
            del self._links[link.key]
            self._metrics.agents_connected.dec()

    def notice(self, payload: str) -> None:
        """One ``NOTIFY botmox_agent_commands`` payload (called on the loop by the listener)."""
        notice = parse_notice(payload)
        if notice is None:
            self._log.warning("agent_notice_unreadable")
            return
        link = self._links.get(notice.agent_id)
        if link is None:
            return
        if notice.event == "command":
            self._spawn(link.deliver_pending())
        elif notice.event == "revoked":
            self._spawn(link.close(CloseCode.REVOKED, "agent revoked"))

    def resync(self) -> None:
        """Deliver every held agent's pending commands: after the listening session was (re)opened,
        notifications may have been missed."""
        for link in list(self._links.values()):
            self._spawn(link.deliver_pending())

    async def aclose(self, *, wait_s: float = SHUTDOWN_WAIT_S) -> None:
        """Close every tunnel still open with 1001 (the server is going away), and wait up to
        ``wait_s`` for their connections to record that they ended, before the pool closes."""
        links = list(self._links.values())
        await asyncio.gather(
            *(link.close(CloseCode.GOING_AWAY, "server shutting down") for link in links),
            return_exceptions=True,
        )
        if links:
            waits = [asyncio.ensure_future(link.ended.wait()) for link in links]
            _, late = await asyncio.wait(waits, timeout=wait_s)
            for wait in late:
                wait.cancel()
        tasks, self._tasks = set(self._tasks), set()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            self._log.error("agent_tunnel_task_failed", error=type(task.exception()).__name__)
