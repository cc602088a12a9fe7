"""This worker's listening session: ``LISTEN botmox_agent_commands`` on one connection of its own.

The session is reopened whenever it is lost (the database restarted, the network dropped it), after
a delay that grows from 1 s to 30 s with full jitter (``botmox_protocol.reconnect_delay``, the
agents' own policy, so a restarted database is not met by every worker at once). Every time it
listens again, notifications sent meanwhile may be lost, so the hub re-reads the pending commands of
every agent it holds (``on_listening``).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Final

from structlog.typing import FilteringBoundLogger

from botmox_api.model import StoreError
from botmox_api.stores.protocols import AgentLinkStore
from botmox_protocol import reconnect_delay

PROBE_EVERY_S: Final = 30.0
"""How long the session may stay quiet before a probe checks it is still there."""


class CommandListener:
    def __init__(
        self,
        store: AgentLinkStore,
        *,
        on_notice: Callable[[str], None],
        on_listening: Callable[[], None],
        logger: FilteringBoundLogger,
        probe_every_s: float = PROBE_EVERY_S,
    ) -> None:
        self._store = store
        self._on_notice = on_notice
        self._on_listening = on_listening
        self._log = logger
        self._probe_every_s = probe_every_s
        self._task: asyncio.Task[None] | None = None
        self.listening = asyncio.Event()

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="botmox-agent-listener")

    async def _run(self) -> None:
        attempt = 0
        while True:
            try:
                subscription = await self._store.listen(self._on_notice)
            except StoreError as error:
                delay = reconnect_delay(attempt)
                attempt += 1
                self._log.warning("agent_listener_unavailable", reason=str(error), retry_in_s=round(delay, 2))
                await asyncio.sleep(delay)
                continue
            attempt = 0
            try:
                self.listening.set()
                self._on_listening()
                await subscription.wait_lost(self._probe_every_s)
                self._log.warning("agent_listener_lost")
            finally:
                self.listening.clear()
                await subscription.aclose()

    async def aclose(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
