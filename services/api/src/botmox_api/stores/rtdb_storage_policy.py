"""Each tenant's storage policy in the Realtime Database, written with ETag transactions.

A write reads the node with its ETag, checks ``If-Match`` against the stored version, computes the
next document and PUTs it with ``if-match: <etag>``. When another writer got there first, RTDB
answers 412 with the new value and ETag and the loop starts over from that value, so:

- concurrent merges lose no update (each one is re-applied to the latest document);
- of concurrent writes with the same ``If-Match``, exactly one wins: after the winner's PUT the
  others see a new version, which no longer matches, and fail with ``VersionConflict``.

Within one store, the transactions on one node take turns (an asyncio lock per node, dropped when
nobody waits for it): nothing bounds how many calls a store runs at once, and N writers racing
over one ETag cost up to N attempts each, each a round trip that cannot win. The ETags still
arbitrate between stores (other API workers, other processes).

The loop is bounded in attempts and time; running out is a ``StoreQueryFailed``, and nothing is
written in that case (every PUT is all-or-nothing).

Each transaction stores a fresh write id in the node with its PUT. The PUT is sent once (see
``_rtdb_rest``); when its answer is lost (a timeout, a dropped connection, a 5xx), the
transaction re-reads the node: if it holds its write id, the write landed and is the answer (not
a 412 for its own write, and not a second application of a merge); otherwise the call fails
(``StoreQueryFailed``) without writing again, since another writer may have acknowledged a newer
version in between.

The RTDB form of a storage policy is ``{secrets, operational, sync: {enabled}, updated_at,
updated_by, version, write_id}`` at ``tenants/{t}/settings/storage_policy``. ``write_id`` names the
transaction that wrote the node: the store's bookkeeping, not part of the document (the API never
serves the raw node). Nodes written by the legacy server have no ``version``: they count as version 1,
so the first write through this API makes them version 2. Parsing is lenient on purpose: a field of
the wrong type or value (hand-edited or legacy data) reads as its default rather than making the
tenant's policy unreadable; a node that is not an object reads as nothing stored.

How a write turns the stored policy into the next one (``next_policy``): the SQL functions implement
the same rules for Supabase (``storage_policy_replace`` / ``storage_policy_merge``); the behaviour
suite runs both stores through one set of tests.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Callable
from typing import Any, Final, Literal

from botmox_api.model import (
    DEFAULT_OPERATIONAL,
    DEFAULT_SYNC_ENABLED,
    STORAGE_POLICY_SUBJECT,
    DataBackend,
    IfMatch,
    JsonObject,
    Operational,
    Readiness,
    StoragePolicy,
    StoragePolicyChanges,
    StoreError,
    VersionConflict,
    query_failed,
)
from botmox_api.stores._rtdb import RtdbTarget, storage_policy_path
from botmox_api.stores._rtdb_rest import (
    DEFAULT_HTTP_TIMEOUT_S,
    DEFAULT_MAX_CONNECTIONS,
    RtdbAnswered,
    RtdbRestClient,
    answer_lost,
    readiness_client,
    rtdb_reason,
)

MAX_TRANSACTION_ATTEMPTS: Final = 100

# --- The RTDB node.

LEGACY_VERSION = 1
WRITE_ID_KEY = "write_id"


def _int_or(value: Any, default: int) -> int:
    if isinstance(value, bool):
        return default
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return default


def policy_from_node(node: Any) -> StoragePolicy | None:
    if not isinstance(node, dict):
        return None
    operational: Operational = DEFAULT_OPERATIONAL
    if node.get("operational") in ("local", "cloud"):
        operational = node["operational"]
    sync = node.get("sync")
    enabled = sync.get("enabled") if isinstance(sync, dict) else None
    updated_by = node.get("updated_by")
    version = _int_or(node.get("version"), LEGACY_VERSION)
    return StoragePolicy(
        operational=operational,
        sync_enabled=enabled if isinstance(enabled, bool) else DEFAULT_SYNC_ENABLED,
        updated_at=_int_or(node.get("updated_at"), 0),
        updated_by=updated_by if isinstance(updated_by, str) else "",
        version=version if version >= 1 else LEGACY_VERSION,
    )


def node_from_policy(policy: StoragePolicy, write_id: str) -> JsonObject:
    return {**policy.to_document(), "version": policy.version, WRITE_ID_KEY: write_id}


def written_by(node: Any, write_id: str) -> bool:
    """Whether ``node`` is the one the transaction ``write_id`` wrote (and nobody wrote since)."""
    return isinstance(node, dict) and node.get(WRITE_ID_KEY) == write_id


# --- The write rules.

WriteMode = Literal["replace", "merge"]


def next_policy(
    current: StoragePolicy | None,
    changes: StoragePolicyChanges,
    *,
    mode: WriteMode,
    updated_by: str,
    updated_at: int,
) -> StoragePolicy:
    """Replace: omitted fields take the defaults. Merge: omitted fields keep the stored values (or
    the defaults when nothing is stored). Either way the version goes up by one (1 for a first write)."""
    base_operational = DEFAULT_OPERATIONAL
    base_sync = DEFAULT_SYNC_ENABLED
    if mode == "merge" and current is not None:
        base_operational = current.operational
        base_sync = current.sync_enabled
    return StoragePolicy(
        operational=changes.operational if changes.operational is not None else base_operational,
        sync_enabled=changes.sync_enabled if changes.sync_enabled is not None else base_sync,
        updated_at=updated_at,
        updated_by=updated_by,
        version=(current.version + 1) if current is not None else 1,
    )


# --- The store.


def epoch_ms() -> int:
    return time.time_ns() // 1_000_000


class _Contention(Exception):
    """The transaction lost its ETag race too often."""


class _Turns:
    __slots__ = ("lock", "waiting")

    def __init__(self) -> None:
        self.lock = asyncio.Lock()
        self.waiting = 0


class _NodeTurns:
    """One lock per node being written, forgotten once nobody holds or waits for it.

    ``take`` and ``give_back`` rather than a context manager: a transaction is the hot path, and a
    generator-based context manager costs more than the lock."""

    def __init__(self) -> None:
        self._nodes: dict[str, _Turns] = {}

    async def take(self, path: str) -> None:
        turns = self._nodes.get(path)
        if turns is None:
            turns = self._nodes[path] = _Turns()
        turns.waiting += 1
        try:
            await turns.lock.acquire()
        except BaseException:
            self._leave(path, turns)
            raise

    def give_back(self, path: str) -> None:
        turns = self._nodes[path]
        turns.lock.release()
        self._leave(path, turns)

    def _leave(self, path: str, turns: _Turns) -> None:
        turns.waiting -= 1
        if turns.waiting == 0:
            del self._nodes[path]


class RtdbStoragePolicyStore:
    backend: DataBackend = "rtdb"

    def __init__(
        self,
        target: RtdbTarget,
        *,
        http_timeout_s: float = DEFAULT_HTTP_TIMEOUT_S,
        max_connections: int = DEFAULT_MAX_CONNECTIONS,
        transaction_budget_s: float = 20.0,
        clock: Callable[[], int] = epoch_ms,
    ) -> None:
        self._rtdb = RtdbRestClient(target, http_timeout_s=http_timeout_s, max_connections=max_connections)
        self._readiness = readiness_client(target, http_timeout_s=http_timeout_s)
        self._turns = _NodeTurns()
        self._transaction_budget_s = transaction_budget_s
        self._clock = clock

    async def read(self, tenant_id: str, *, uid: str | None = None) -> StoragePolicy | None:
        path = storage_policy_path(tenant_id)
        try:
            return policy_from_node(await self._rtdb.get(path))
        except Exception as error:
            raise query_failed("rtdb", "read", STORAGE_POLICY_SUBJECT, self._reason(error)) from error

    async def replace(
        self,
        tenant_id: str,
        changes: StoragePolicyChanges,
        *,
        updated_by: str,
        if_match: IfMatch | None = None,
    ) -> StoragePolicy:
        return await self._write(tenant_id, changes, "replace", updated_by, if_match)

    async def merge(
        self,
        tenant_id: str,
        changes: StoragePolicyChanges,
        *,
        updated_by: str,
        if_match: IfMatch | None = None,
    ) -> StoragePolicy:
        return await self._write(tenant_id, changes, "merge", updated_by, if_match)

    async def _write(
        self,
        tenant_id: str,
        changes: StoragePolicyChanges,
        mode: WriteMode,
        updated_by: str,
        if_match: IfMatch | None,
    ) -> StoragePolicy:
        try:
            path = storage_policy_path(tenant_id)
            # The transactions on one node take turns (one coroutine level less than a
            # ``_transaction`` of its own: each level costs CPU on every await's resumption).
            await self._turns.take(path)
            try:
                return await self._attempts(path, changes, mode, updated_by, if_match)
            finally:
                self._turns.give_back(path)
        except StoreError:
            raise
        except Exception as error:
            raise query_failed("rtdb", "write", STORAGE_POLICY_SUBJECT, self._reason(error)) from error

    async def _attempts(
        self,
        path: str,
        changes: StoragePolicyChanges,
        mode: WriteMode,
        updated_by: str,
        if_match: IfMatch | None,
    ) -> StoragePolicy:
        write_id = secrets.token_hex(16)
        deadline = time.monotonic() + self._transaction_budget_s
        node, etag = await self._rtdb.get_with_etag(path)
        for _ in range(MAX_TRANSACTION_ATTEMPTS):
            new = self._next(node, changes, mode, updated_by, if_match)
            if etag is None:
                raise RtdbAnswered(200, b'{"error": "no ETag in the answer"}')
            try:
                written, node, etag = await self._rtdb.set_if_unchanged(
                    path, etag, node_from_policy(new, write_id)
                )
            except Exception as error:
                if answer_lost(error) and written_by(await self._rtdb.get(path), write_id):
                    return new
                raise
            if written:
                return new
            if time.monotonic() > deadline:
                break
        raise _Contention

    def _next(
        self,
        node: Any,
        changes: StoragePolicyChanges,
        mode: WriteMode,
        updated_by: str,
        if_match: IfMatch | None,
    ) -> StoragePolicy:
        current = policy_from_node(node)
        current_version = current.version if current is not None else None
        if if_match is not None and not if_match.matches(current_version):
            raise VersionConflict("rtdb", current_version)
        return next_policy(current, changes, mode=mode, updated_by=updated_by, updated_at=self._clock())

    def _reason(self, error: BaseException) -> str:
        if isinstance(error, _Contention):
            return "Too many concurrent writers; the transaction gave up"
        return rtdb_reason(error, timeout_s=self._rtdb.http_timeout_s)

    async def check_ready(self) -> Readiness:
        return await self._readiness.check_ready()

    async def aclose(self) -> None:
        await self._readiness.aclose()
        await self._rtdb.aclose()
