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

The cutover tool copies what the API would serve, and nothing it would have to guess: its reads
(``read_stored``, ``read_legacy``) parse strictly (``stored_policy_from_node``), so a node the lenient
parse would patch with defaults is reported instead of copied. Its writes (``write_stored``,
``remove_legacy``) are one conditional PUT each, not a transaction loop: a node that changed since the
read is a ``VersionConflict`` for the tool to report, never something to merge into.

How a write turns the stored policy into the next one (``next_policy``): the SQL functions implement
the same rules for Supabase (``storage_policy_replace`` / ``storage_policy_merge``); the behaviour
suite runs both stores through one set of tests.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any, Final, Literal

from botmox_api.model import (
    DEFAULT_OPERATIONAL,
    DEFAULT_SYNC_ENABLED,
    SECRETS_LOCAL_ONLY,
    STORAGE_POLICY_SUBJECT,
    TENANT_ID_PATTERN,
    DataBackend,
    IfMatch,
    InvalidStoredPolicy,
    JsonObject,
    Operational,
    Readiness,
    StoragePolicy,
    StoragePolicyChanges,
    StoreError,
    VersionConflict,
    query_failed,
)
from botmox_api.stores._rtdb import (
    LEGACY_STORAGE_POLICY_PATH,
    TENANTS_PATH,
    RtdbTarget,
    storage_policy_path,
)
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
DEFAULT_READ_CONCURRENCY: Final = 32
"""How many nodes ``read_stored`` reads at once (the cutover tool's ``--concurrency``)."""

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


# The strict parse: what a copy may carry over (the backfill's ``read_stored``, the legacy node).
_NODE_KEYS: Final = frozenset(
    {"secrets", "operational", "sync", "updated_at", "updated_by", "version", WRITE_ID_KEY}
)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _node_problems(node: dict[str, Any]) -> list[str]:
    problems = [f"unexpected key {key!r}" for key in sorted(node) if key not in _NODE_KEYS]
    if "secrets" in node and node["secrets"] != SECRETS_LOCAL_ONLY:
        problems.append(f"secrets must be {SECRETS_LOCAL_ONLY!r}, not {node['secrets']!r}")
    if "operational" not in node:
        problems.append("operational is missing")
    elif node["operational"] not in ("local", "cloud"):
        problems.append(f"operational must be 'local' or 'cloud', not {node['operational']!r}")
    sync = node.get("sync")
    if sync is None:
        problems.append("sync.enabled is missing")
    elif not isinstance(sync, dict):
        problems.append(f"sync must be an object, not {sync!r}")
    else:
        problems.extend(f"unexpected key 'sync.{key}'" for key in sorted(sync) if key != "enabled")
        if "enabled" not in sync:
            problems.append("sync.enabled is missing")
        elif not isinstance(sync["enabled"], bool):
            problems.append(f"sync.enabled must be true or false, not {sync['enabled']!r}")
    if "updated_at" not in node:
        problems.append("updated_at is missing")
    elif not _is_int(node["updated_at"]) or node["updated_at"] < 0:
        problems.append(f"updated_at must be an integer >= 0, not {node['updated_at']!r}")
    if "updated_by" not in node:
        problems.append("updated_by is missing")
    elif not isinstance(node["updated_by"], str) or not node["updated_by"]:
        problems.append(f"updated_by must be a non-empty string, not {node['updated_by']!r}")
    if "version" in node and (not _is_int(node["version"]) or node["version"] < 1):
        problems.append(f"version must be an integer >= 1, not {node['version']!r}")
    return problems


def stored_policy_from_node(node: Any) -> StoragePolicy | InvalidStoredPolicy | None:
    """``policy_from_node``, strict: what the API would read, or an ``InvalidStoredPolicy`` naming
    every field that the lenient parse would have replaced by a default (and every unknown key),
    with the version the API reads from it. ``None`` when nothing is stored.

    Rules: ``operational`` 'local' or 'cloud'; ``sync`` exactly ``{enabled: bool}``; ``updated_at``
    an integer >= 0; ``updated_by`` a non-empty string; ``secrets`` 'local-only' when present;
    ``version`` an integer >= 1, or absent (a legacy node: version 1); ``write_id`` allowed."""
    if node is None:
        return None
    if not isinstance(node, dict):
        # The API reads it as nothing stored; a copy would replace it.
        return InvalidStoredPolicy(f"the node is not an object: {type(node).__name__}", version=None)
    policy = policy_from_node(node)
    problems = _node_problems(node)
    if problems:
        return InvalidStoredPolicy("; ".join(problems), version=policy.version if policy else None)
    return policy


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
        read_concurrency: int = DEFAULT_READ_CONCURRENCY,
    ) -> None:
        if read_concurrency < 1:
            raise ValueError("read_concurrency must be at least 1")
        self._read_concurrency = read_concurrency
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

    # --- The backfill seam (``StoragePolicyBackfillStore``) and the legacy node
    # (``LegacyStoragePolicySource``): the same node format, paths and REST client as the API's calls.

    async def tenant_batches(self, batch_size: int, *, after: str | None = None) -> AsyncIterator[list[str]]:
        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        try:
            # One shallow read: the keys below ``tenants`` (each ``true``), none of their data.
            keys = await self._rtdb.get(TENANTS_PATH, shallow=True)
        except Exception as error:
            raise query_failed("rtdb", "read", STORAGE_POLICY_SUBJECT, self._reason(error)) from error
        tenant_ids = sorted(keys) if isinstance(keys, dict) else []
        if after is not None:
            tenant_ids = [tenant_id for tenant_id in tenant_ids if tenant_id > after]
        for start in range(0, len(tenant_ids), batch_size):
            yield tenant_ids[start : start + batch_size]

    async def read_stored(self, tenant_ids: Sequence[str]) -> dict[str, StoragePolicy | InvalidStoredPolicy]:
        turns = asyncio.Semaphore(self._read_concurrency)

        async def read_one(tenant_id: str) -> StoragePolicy | InvalidStoredPolicy | None:
            if not TENANT_ID_PATTERN.fullmatch(tenant_id):
                # Never a path built from it: the key may hold what escapes a tenant's node.
                return InvalidStoredPolicy(f"invalid tenant id {tenant_id!r}")
            async with turns:
                try:
                    node = await self._rtdb.get(storage_policy_path(tenant_id))
                except Exception as error:
                    raise query_failed("rtdb", "read", STORAGE_POLICY_SUBJECT, self._reason(error)) from error
            return stored_policy_from_node(node)

        unique = list(dict.fromkeys(tenant_ids))
        try:
            async with asyncio.TaskGroup() as group:
                tasks = [group.create_task(read_one(tenant_id)) for tenant_id in unique]
        except BaseExceptionGroup as failures:
            # The first failure stands for all of them (the others were cancelled).
            raise failures.exceptions[0] from None
        stored: dict[str, StoragePolicy | InvalidStoredPolicy] = {}
        for tenant_id, task in zip(unique, tasks, strict=True):
            policy = task.result()
            if policy is not None:
                stored[tenant_id] = policy
        return stored

    async def write_stored(
        self, tenant_id: str, policy: StoragePolicy, *, expected_version: int | None
    ) -> None:
        if not TENANT_ID_PATTERN.fullmatch(tenant_id):
            raise ValueError(f"invalid tenant id {tenant_id!r}")
        path = storage_policy_path(tenant_id)
        try:
            await self._turns.take(path)
            try:
                await self._put_if_version(
                    path, node_from_policy(policy, secrets.token_hex(16)), expected_version
                )
            finally:
                self._turns.give_back(path)
        except StoreError:
            raise
        except Exception as error:
            raise query_failed("rtdb", "write", STORAGE_POLICY_SUBJECT, self._reason(error)) from error

    async def read_legacy(self) -> StoragePolicy | InvalidStoredPolicy | None:
        try:
            node = await self._rtdb.get(LEGACY_STORAGE_POLICY_PATH)
        except Exception as error:
            raise query_failed("rtdb", "read", STORAGE_POLICY_SUBJECT, self._reason(error)) from error
        return stored_policy_from_node(node)

    async def remove_legacy(self, *, expected_version: int) -> None:
        try:
            await self._put_if_version(LEGACY_STORAGE_POLICY_PATH, None, expected_version)
        except StoreError:
            raise
        except Exception as error:
            raise query_failed("rtdb", "write", STORAGE_POLICY_SUBJECT, self._reason(error)) from error

    async def _put_if_version(
        self, path: str, value: JsonObject | None, expected_version: int | None
    ) -> None:
        """PUT ``value`` (``None`` deletes) if the version the API reads at ``path`` is
        ``expected_version`` (``None``: nothing stored), else ``VersionConflict``. One attempt: a
        node that changed between the read and the PUT (412) is a conflict, not a retry."""
        node, etag = await self._rtdb.get_with_etag(path)
        current = policy_from_node(node)
        current_version = current.version if current is not None else None
        if current_version != expected_version:
            raise VersionConflict("rtdb", current_version)
        if etag is None:
            raise RtdbAnswered(200, b'{"error": "no ETag in the answer"}')
        try:
            written, node, _ = await self._rtdb.set_if_unchanged(path, etag, value)
        except Exception as error:
            # A lost answer: the PUT may have landed. A write is recognised by its write id; a
            # delete by the node being gone (whoever deleted it, it is what was asked for).
            if answer_lost(error):
                after = await self._rtdb.get(path)
                if (after is None) if value is None else written_by(after, str(value[WRITE_ID_KEY])):
                    return
            raise
        if not written:
            now = policy_from_node(node)
            raise VersionConflict("rtdb", now.version if now is not None else None)

    def _reason(self, error: BaseException) -> str:
        if isinstance(error, _Contention):
            return "Too many concurrent writers; the transaction gave up"
        return rtdb_reason(error, timeout_s=self._rtdb.http_timeout_s)

    async def check_ready(self) -> Readiness:
        return await self._readiness.check_ready()

    async def aclose(self) -> None:
        await self._readiness.aclose()
        await self._rtdb.aclose()
