"""Shadow reads (``STORAGE_POLICY_SHADOW=on``): each ``storage_policy`` answer, compared off the
request path with what the other backend holds, so drift between RTDB and Supabase shows up before a
flip of ``DATA_BACKEND`` would serve it.

The request path only offers: ``offer(tenant_id, policy)`` puts the pair the API has just served into
a bounded queue without waiting (a full queue drops it, and counts the drop), so a shadow read can
neither change an answer nor wait for one. A few workers, started and stopped with the application's
lifespan, read the other backend as the API itself (``read(tenant_id)``, no uid; each read bounded by
that store's own timeouts) and compare with ``model.policy_differences``, the one comparison rule the
cutover tool's ``plan`` and ``verify`` use too.

The workers share the API's event loop, and a read of the other backend costs about as much CPU as
the read that was served (``make bench BENCH_ARGS="--quick --shadow"``, supabase mode: GET throughput
halved when every GET was compared). So the workers start at most ``rate`` comparisons per second
between them; beyond that the queue fills and offers are dropped: under load shadow reads are a
sample, and their cost is bounded by the rate, not by the traffic.

What it reports (``docs/api.md``, "Shadow reads"): counters (``ShadowCounts``, readable in process
through ``counts()``), a ``storage_policy_shadow_mismatch`` line per mismatch naming the tenant, both
backends and the differing FIELD NAMES (never a value: a policy is tenant data), a
``storage_policy_shadow_failed`` line per failed read of the other backend with the store's reason,
and a ``storage_policy_shadow_summary`` line of the counters every ``summary_interval_s`` when they
changed, and once at shutdown. Shutdown cancels what is in flight and abandons what is queued
(``unfinished`` in the last summary): shadow reads are a sample, never a backlog to finish.
"""

from __future__ import annotations

import asyncio
import dataclasses
from dataclasses import dataclass
from typing import Final

from structlog.typing import FilteringBoundLogger

from botmox_api.model import DataBackend, StoragePolicy, StoreError, policy_differences
from botmox_api.stores.protocols import StoragePolicyStore

MISMATCH_EVENT: Final = "storage_policy_shadow_mismatch"
FAILED_EVENT: Final = "storage_policy_shadow_failed"
SUMMARY_EVENT: Final = "storage_policy_shadow_summary"
DEFAULT_SUMMARY_INTERVAL_S: Final = 60.0


@dataclass(slots=True)
class ShadowCounts:
    """Since the application started. ``offered`` = ``dropped`` + what the queue took; of what a worker
    finished, ``compared`` = ``matched`` + ``mismatched``, and a failed read of the other backend is
    ``failed``."""

    offered: int = 0
    compared: int = 0
    matched: int = 0
    mismatched: int = 0
    dropped: int = 0
    failed: int = 0


class ShadowReads:
    """The queue, its workers and the counters of one application's shadow reads."""

    def __init__(
        self,
        other: StoragePolicyStore,
        *,
        primary: DataBackend,
        logger: FilteringBoundLogger,
        queue_size: int,
        workers: int,
        rate: float,
        summary_interval_s: float = DEFAULT_SUMMARY_INTERVAL_S,
    ) -> None:
        if other.backend == primary:
            raise ValueError(f"the shadow store must be the other backend than {primary}")
        self._other = other
        self._primary: DataBackend = primary
        self._logger = logger
        self._queue: asyncio.Queue[tuple[str, StoragePolicy | None]] = asyncio.Queue(maxsize=queue_size)
        self._worker_count = workers
        self._spacing_s = 1 / rate
        self._next_start = 0.0  # the loop's clock: when the next comparison may start
        self._summary_interval_s = summary_interval_s
        self._counters = ShadowCounts()
        self._in_flight = 0
        self._tasks: list[asyncio.Task[None]] = []

    def offer(self, tenant_id: str, policy: StoragePolicy | None) -> None:
        """What the API has just served for ``tenant_id`` (``None``: nothing stored); never waits."""
        self._counters.offered += 1
        # Full is the usual state under load (the rate holds the workers back): no exception for it.
        if self._queue.full():
            self._counters.dropped += 1
        else:
            self._queue.put_nowait((tenant_id, policy))

    def counts(self) -> ShadowCounts:
        """A copy of the counters."""
        return dataclasses.replace(self._counters)

    async def settled(self) -> None:
        """Until every comparison offered so far is done (for tests and an orderly look at the counts)."""
        await self._queue.join()

    def start(self) -> None:
        """Start the workers and the summary on the running loop (the application's lifespan)."""
        if self._tasks:
            raise RuntimeError("shadow reads already started")
        self._tasks = [
            asyncio.create_task(self._work(), name=f"storage-policy-shadow-{number}")
            for number in range(self._worker_count)
        ]
        self._tasks.append(asyncio.create_task(self._summarise(), name="storage-policy-shadow-summary"))

    async def aclose(self) -> None:
        """Cancel the workers (a read in flight included) and write the last summary."""
        # Counted before the cancelled reads leave their workers.
        unfinished = self._in_flight + self._queue.qsize()
        tasks, self._tasks = self._tasks, []
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._log_summary(self.counts(), unfinished=unfinished)

    async def _work(self) -> None:
        while True:
            tenant_id, served = await self._queue.get()
            self._in_flight += 1
            try:
                await self._wait_for_turn()
                await self._compare(tenant_id, served)
            finally:
                self._in_flight -= 1
                self._queue.task_done()

    async def _wait_for_turn(self) -> None:
        now = asyncio.get_running_loop().time()
        start = max(now, self._next_start)
        self._next_start = start + self._spacing_s
        if start > now:
            await asyncio.sleep(start - now)

    async def _compare(self, tenant_id: str, served: StoragePolicy | None) -> None:
        try:
            other = await self._other.read(tenant_id)
        except StoreError as error:
            self._counters.failed += 1
            reason = error.details.get("reason") or error.message
            self._logger.warning(FAILED_EVENT, **self._names(tenant_id), reason=str(reason))
            return
        except Exception as error:  # a worker outlives any one read
            self._counters.failed += 1
            # The class only: an unexpected error's text could quote the document it choked on.
            self._logger.error(FAILED_EVENT, **self._names(tenant_id), reason=type(error).__name__)
            return
        self._counters.compared += 1
        differences = policy_differences(served, other)
        if not differences:
            self._counters.matched += 1
            return
        self._counters.mismatched += 1
        self._logger.warning(MISMATCH_EVENT, **self._names(tenant_id), fields=list(differences))

    def _names(self, tenant_id: str) -> dict[str, str]:
        return {"tenant_id": tenant_id, "primary": self._primary, "shadow": self._other.backend}

    async def _summarise(self) -> None:
        last = ShadowCounts()
        while True:
            await asyncio.sleep(self._summary_interval_s)
            current = self.counts()
            if current != last:
                self._log_summary(current)
                last = current

    def _log_summary(self, counts: ShadowCounts, *, unfinished: int | None = None) -> None:
        extra = {} if unfinished is None else {"unfinished": unfinished}
        names = {"primary": self._primary, "shadow": self._other.backend}
        self._logger.info(SUMMARY_EVENT, **names, **dataclasses.asdict(counts), **extra)
