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
STOP_WAIT_S: Final = 10.0
"""How long stopping waits for a connection attempt in flight (its connect timeout is shorter)."""


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
        self._stop = asyncio.Event()
        self.listening = asyncio.Event()
        # Sessions opened so far: one more after every loss.
        self.sessions = 0

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="botmox-agent-listener")

    async def _run(self) -> None:
        attempt = 0
        while not self._stop.is_set():
            # Never cancelled while it connects (an asyncpg connect cut short leaks its socket):
            # stopping waits for it, bounded by the connect timeout, and closes what it opened.
            try:
                subscription = await self._store.listen(self._on_notice)
            except StoreError as error:
                delay = reconnect_delay(attempt)
                attempt += 1
                self._log.warning("agent_listener_unavailable", reason=str(error), retry_in_s=round(delay, 2))
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stop.wait(), delay)
                continue
            attempt = 0
            self.sessions += 1
            try:
                if self._stop.is_set():
                    return
                self.listening.set()
                self._on_listening()
                lost = asyncio.ensure_future(subscription.wait_lost(self._probe_every_s))
                stopping = asyncio.ensure_future(self._stop.wait())
                await asyncio.wait({lost, stopping}, return_when=asyncio.FIRST_COMPLETED)
                for waiter in (lost, stopping):
                    waiter.cancel()
                await asyncio.gather(lost, stopping, return_exceptions=True)
                if not self._stop.is_set():
                    self._log.warning("agent_listener_lost")
            finally:
                self.listening.clear()
                await subscription.aclose()

    async def aclose(self) -> None:
        task, self._task = self._task, None
        self._stop.set()
        if task is None:
            return
        try:
            await asyncio.wait_for(asyncio.shield(task), STOP_WAIT_S)
        except TimeoutError:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
