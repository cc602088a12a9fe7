"""The periodic sweep of commands past their deadline (``api_agent_commands_expire``), run by every
worker: the function skips rows another worker's sweep holds, so sweeps split the work.

Bounded: at most ``batches`` statements of ``batch`` commands each per round, one round every
``interval_s``; a backlog larger than that is worked off over the next rounds.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Final

from structlog.typing import FilteringBoundLogger

from botmox_api.metrics import ApiMetrics
from botmox_api.model import StoreError
from botmox_api.stores.protocols import AgentLinkStore

BATCH: Final = 200
BATCHES_PER_ROUND: Final = 5


class ExpirySweep:
    def __init__(
        self,
        store: AgentLinkStore,
        *,
        interval_s: float,
        metrics: ApiMetrics,
        logger: FilteringBoundLogger,
        batch: int = BATCH,
        batches: int = BATCHES_PER_ROUND,
    ) -> None:
        self._store = store
        self._interval_s = interval_s
        self._metrics = metrics
        self._log = logger
        self._batch = batch
        self._batches = batches
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="botmox-agent-sweep")

    async def sweep(self) -> int:
        """One round; the number of commands it expired."""
        total = 0
        for _ in range(self._batches):
            expired = await self._store.expire_commands(self._batch)
            for command in expired:
                self._metrics.agent_commands.labels(command.kind or "unknown", "expired").inc()
            total += len(expired)
            if len(expired) < self._batch:
                break
        if total:
            self._log.info("agent_commands_expired", count=total)
        return total

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self._interval_s)
            try:
                await self.sweep()
            except StoreError as error:
                self._log.warning("agent_sweep_failed", reason=str(error))

    async def aclose(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
