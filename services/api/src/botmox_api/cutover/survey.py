"""What exists where: the tenants of both backends, read a batch at a time, and what a tenant's two
stored documents amount to (``State``).

Every command walks the same way: the tenant ids of both sides (``tenant_ids``: the union of both
``tenant_batches``, or the ``--tenant`` list), sorted here rather than trusting two backends to sort
alike, then ``read_pairs`` per batch (one ``read_stored`` call per side, both at once). Comparison is
``model.policy_differences`` only.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

from botmox_api.cutover.progress import ProgressReport
from botmox_api.model import DataBackend, InvalidStoredPolicy, StoragePolicy, policy_differences
from botmox_api.stores.protocols import LegacyStoragePolicySource, StoragePolicyBackfillStore

Stored = StoragePolicy | InvalidStoredPolicy | None
"""One side's document for a tenant: a policy, one that fails validation, or nothing stored."""


class State(enum.StrEnum):
    """What a tenant's documents in the two backends amount to (``plan``'s column, ``--json``'s value)."""

    rtdb_only = "rtdb_only"
    supabase_only = "supabase_only"
    equal = "equal"
    different = "different"
    invalid = "invalid"
    neither = "neither"


STATE_TITLES: dict[State, str] = {
    State.rtdb_only: "RTDB only",
    State.supabase_only: "Supabase only",
    State.equal: "both equal",
    State.different: "both different",
    State.invalid: "invalid on a side",
    State.neither: "nothing stored",
}


@dataclass(frozen=True, slots=True)
class Pair:
    """A tenant's document on each side."""

    tenant: str
    rtdb: Stored
    supabase: Stored

    def side(self, backend: DataBackend) -> Stored:
        return self.rtdb if backend == "rtdb" else self.supabase


def classify(pair: Pair) -> State:
    rtdb, supabase = pair.rtdb, pair.supabase
    if isinstance(rtdb, InvalidStoredPolicy) or isinstance(supabase, InvalidStoredPolicy):
        return State.invalid
    if rtdb is None:
        return State.neither if supabase is None else State.supabase_only
    if supabase is None:
        return State.rtdb_only
    return State.equal if not policy_differences(rtdb, supabase) else State.different


def describe(stored: Stored) -> str:
    """One side's document in a table cell: ``v3``, ``invalid: <reason>``, ``-``."""
    if stored is None:
        return "-"
    if isinstance(stored, InvalidStoredPolicy):
        return f"invalid: {stored.reason}"
    return f"v{stored.version}"


@dataclass(frozen=True, slots=True)
class Backends:
    """The two stores the tool reads and writes, by backend, and RTDB's legacy node."""

    rtdb: StoragePolicyBackfillStore
    supabase: StoragePolicyBackfillStore
    legacy: LegacyStoragePolicySource | None = None

    def store(self, backend: DataBackend) -> StoragePolicyBackfillStore:
        return self.rtdb if backend == "rtdb" else self.supabase


async def _all_ids(store: StoragePolicyBackfillStore, batch_size: int) -> set[str]:
    ids: set[str] = set()
    async for batch in store.tenant_batches(batch_size):
        ids.update(batch)
    return ids


async def tenant_ids(
    backends: Backends, *, selected: Sequence[str], batch_size: int, sides: Sequence[DataBackend]
) -> list[str]:
    """The tenants to walk, sorted: ``selected`` when given, else every tenant listed by ``sides``."""
    if selected:
        return sorted(set(selected))
    listed = await asyncio.gather(*(_all_ids(backends.store(side), batch_size) for side in sides))
    return sorted(set().union(*listed))


def batches(ids: Sequence[str], batch_size: int) -> Iterator[Sequence[str]]:
    for start in range(0, len(ids), batch_size):
        yield ids[start : start + batch_size]


async def read_pairs(backends: Backends, batch: Sequence[str]) -> list[Pair]:
    """Both sides of each tenant of ``batch``, in ``batch``'s order: one read per side, both at once."""
    rtdb, supabase = await asyncio.gather(
        backends.rtdb.read_stored(batch), backends.supabase.read_stored(batch)
    )
    return [Pair(tenant, rtdb.get(tenant), supabase.get(tenant)) for tenant in batch]


class ReadAhead:
    """Both sides of ``chunks``, a batch at a time, the next batch's reads in flight while the caller
    handles the one before (its writes included: batches hold different tenants). ``aclose`` drops
    a read no one will take."""

    def __init__(self, backends: Backends, chunks: Sequence[Sequence[str]]) -> None:
        self._backends = backends
        self._chunks = chunks
        self._next = 0
        self._ahead: asyncio.Future[list[Pair]] | None = None

    def _start(self) -> None:
        if self._next < len(self._chunks):
            self._ahead = asyncio.ensure_future(read_pairs(self._backends, self._chunks[self._next]))
            self._next += 1
        else:
            self._ahead = None

    async def next(self) -> list[Pair]:
        if self._ahead is None:
            self._start()
        assert self._ahead is not None, "no batch left"
        pairs = await self._ahead
        self._start()
        return pairs

    async def aclose(self) -> None:
        ahead, self._ahead = self._ahead, None
        if ahead is not None and not ahead.done():
            ahead.cancel()
        if ahead is not None:
            # Its outcome is of no interest any more (the caller stopped or failed), only retrieved.
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await ahead


async def walk(
    backends: Backends,
    ids: Sequence[str],
    batch_size: int,
    on_batch: Callable[[list[Pair]], None],
) -> None:
    """Read every tenant of ``ids`` on both sides, a batch at a time (``ReadAhead``)."""
    chunks = list(batches(ids, batch_size))
    reads = ReadAhead(backends, chunks)
    try:
        for _ in chunks:
            on_batch(await reads.next())
    finally:
        await reads.aclose()


async def walk_both_sides(
    backends: Backends,
    *,
    tenants: Sequence[str],
    batch_size: int,
    progress: ProgressReport,
    on_batch: Callable[[list[Pair]], None],
) -> None:
    """The read-only commands' walk (``plan``, ``verify``): every tenant either side has (or the
    ``--tenant`` list), both sides read a batch at a time, with progress over the whole walk."""
    ids = await tenant_ids(backends, selected=tenants, batch_size=batch_size, sides=("rtdb", "supabase"))
    progress.start(len(ids))
    try:
        await walk(backends, ids, batch_size, on_batch)
    finally:
        progress.stop()
