"""Each tenant's storage policy in Supabase's PostgreSQL, over SQL (the transport the VPS uses).

The store connects as the ``botmox_api`` login role through an ``AsyncConnectionPool``. Every call
is one transaction that first declares the caller (``request.jwt.claims``, local to the transaction:
the tenant in ``app_metadata``, the principal's uid as ``sub``, as PostgREST would from a verified
JWT) and then calls one of the migration's functions: row-level security confines the transaction to
that tenant, the functions refuse any other ``p_tenant_id``, and they record ``sub`` as ``updated_by``.

Failure behaviour, by design:
- The pool opens on first use without waiting for a connection: start-up never needs the database.
- Short connect, pool-wait and statement timeouts: a dead database is a ``StoreQueryFailed`` in about
  ``pool_timeout_s``, not a hang.
- Recovery without a restart: every connection is checked before it is handed out (broken ones are
  replaced), and a failed reconnection gives up after ``reconnect_timeout_s`` so the next request
  starts a fresh attempt instead of waiting out a long backoff.
- Readiness runs on a connection of its own (``ReadinessConnection``, reopened when
  the server dropped it), so health checks never wait for, nor take, a connection of the pool.
- The pool belongs to the event loop that first used it (the API has one loop).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping, Sequence
from typing import Any, Final, LiteralString

import psycopg
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from botmox_api.model import (
    STORAGE_POLICY_SUBJECT,
    DataBackend,
    IfMatch,
    Readiness,
    StoragePolicy,
    StoragePolicyChanges,
    VersionConflict,
    query_failed,
)
from botmox_api.stores._supabase_rows import (
    MalformedRow,
    if_match_arguments,
    policy_from_row,
    request_claims,
    version_at_conflict,
)

VERSION_CONFLICT_SQLSTATE: Final = "BM412"

# The API's calls, one statement each (migration 20261206110000_storage_policy_api_calls): the
# botmox.api_* function declares the claims ($1, ``claims_text``) local to the statement's own
# transaction and calls the public function, under row-level security as botmox_api. Literal
# statements with asyncpg placeholders; the floor app of ``make bench`` imports them to run the very
# same SQL. Parameters: $1 claims, $2 tenant id; writes add $3 operational, $4 sync_enabled,
# $5 if_match (bigint[] or NULL), $6 if_exists.
READ_SQL: Final = (
    "select operational, sync_enabled, updated_at_ms, updated_by, version"
    " from botmox.api_storage_policy_read($1, $2)"
)
REPLACE_SQL: Final = (
    "select operational, sync_enabled, updated_at_ms, updated_by, version"
    " from botmox.api_storage_policy_replace($1, $2, $3, $4, $5, $6)"
)
MERGE_SQL: Final = (
    "select operational, sync_enabled, updated_at_ms, updated_by, version"
    " from botmox.api_storage_policy_merge($1, $2, $3, $4, $5, $6)"
)


def claims_text(tenant_id: str, uid: str | None) -> str:
    """The ``p_claims`` argument of the statements above: ``request_claims`` as compact JSON text."""
    return json.dumps(request_claims(tenant_id, uid), separators=(",", ":"))


_DECLARE_CLAIMS: Final = "select set_config('request.jwt.claims', %s, true)"
# Literal statements (no string building): the function names are fixed, every value is a parameter.
_READ: Final = (
    "select operational, sync_enabled, updated_at_ms, updated_by, version"
    " from public.storage_policy_read(p_tenant_id => %s)"
)
_REPLACE: Final = (
    "select operational, sync_enabled, updated_at_ms, updated_by, version"
    " from public.storage_policy_replace(p_tenant_id => %s,"
    " p_operational => %s::text, p_sync_enabled => %s::boolean,"
    " p_if_match => %s::bigint[], p_if_exists => %s::boolean)"
)
_MERGE: Final = (
    "select operational, sync_enabled, updated_at_ms, updated_by, version"
    " from public.storage_policy_merge(p_tenant_id => %s,"
    " p_operational => %s::text, p_sync_enabled => %s::boolean,"
    " p_if_match => %s::bigint[], p_if_exists => %s::boolean)"
)


# --- Readiness.
# What "ready" means for the SQL transport: the migrations' table and functions exist, and the
# role the API logs in as may use them. Checked in one statement over a connection of its own
# (``ReadinessConnection``), never one of the pool's: readiness must not queue behind user traffic,
# nor take a connection from it.
#
# ``botmox.request_subject`` stands for the second migration (caller identity): without it the
# functions still want ``p_updated_by``, which the API no longer sends.

CHECK_SCHEMA: Final = """
select name, object is not null as present,
       coalesce(case when kind = 'table' then has_table_privilege(object, 'select')
                     else has_function_privilege(object, 'execute') end, false) as allowed
from (values
  (1, 'public.storage_policies', 'table', to_regclass('public.storage_policies')::oid),
  (2, 'public.storage_policy_read', 'function',
      to_regprocedure('public.storage_policy_read(text)')::oid),
  (3, 'public.storage_policy_replace', 'function',
      to_regprocedure('public.storage_policy_replace(text,text,text,boolean,bigint[],boolean)')::oid),
  (4, 'public.storage_policy_merge', 'function',
      to_regprocedure('public.storage_policy_merge(text,text,text,boolean,bigint[],boolean)')::oid),
  (5, 'botmox.request_subject', 'function', to_regprocedure('botmox.request_subject()')::oid)
) as objects(position, name, kind, object)
order by position
"""


def readiness_from_rows(rows: Sequence[dict[str, object]]) -> Readiness:
    missing = [str(row["name"]) for row in rows if row["present"] is not True]
    if missing:
        return Readiness(False, "Migration not applied: missing " + ", ".join(missing))
    denied = [str(row["name"]) for row in rows if row["allowed"] is not True]
    if denied:
        return Readiness(False, "The API's database role may not use " + ", ".join(denied))
    return Readiness(True)


class ReadinessConnectFailed(Exception):
    """No connection to the database could be opened for the check."""


class ReadinessConnection:
    """The one connection the readiness check runs on, opened on first use and reopened when the
    server dropped it. Checks take turns on it. It belongs to the event loop that first used it."""

    def __init__(self, conninfo: str, connect_kwargs: Mapping[str, Any]) -> None:
        self._conninfo = conninfo
        self._connect_kwargs = dict(connect_kwargs)
        self._lock = asyncio.Lock()
        self._conn: psycopg.AsyncConnection[dict[str, Any]] | None = None
        self._closed = False

    async def check_schema(self) -> list[dict[str, Any]]:
        """The rows of ``CHECK_SCHEMA``; raises ``ReadinessConnectFailed`` or a ``psycopg.Error``."""
        async with self._lock:
            if self._closed:
                raise psycopg.InterfaceError("the store is closed")
            conn = self._conn
            if conn is not None:
                try:
                    return await self._query(conn)
                except psycopg.OperationalError:
                    if not conn.broken:
                        raise
                    # The server restarted or dropped the connection since the last check: try once
                    # on a new one, as the pool does when its check finds a connection broken.
                    await self._drop()
            self._conn = await self._connect()
            return await self._query(self._conn)

    async def _connect(self) -> psycopg.AsyncConnection[dict[str, Any]]:
        try:
            return await psycopg.AsyncConnection.connect(
                self._conninfo, autocommit=True, row_factory=dict_row, **self._connect_kwargs
            )
        except psycopg.OperationalError as error:
            raise ReadinessConnectFailed from error

    async def _query(self, conn: psycopg.AsyncConnection[dict[str, Any]]) -> list[dict[str, Any]]:
        try:
            cursor = await conn.execute(CHECK_SCHEMA)
            return await cursor.fetchall()
        except asyncio.CancelledError:
            # A check cut short by its timeout leaves the connection mid-statement.
            await self._drop()
            raise

    async def _drop(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            await conn.close()

    async def aclose(self) -> None:
        async with self._lock:
            self._closed = True
            await self._drop()


# --- The store.


class _NoRow(Exception):
    """A write function returned no row."""


class SqlStoragePolicyStore:
    backend: DataBackend = "supabase"

    def __init__(
        self,
        dsn: str,
        *,
        min_size: int = 1,
        max_size: int = 10,
        connect_timeout_s: int = 3,
        pool_timeout_s: float = 3.0,
        statement_timeout_ms: int = 5000,
        reconnect_timeout_s: float = 5.0,
    ) -> None:
        self._pool_timeout_s = pool_timeout_s
        connect_kwargs: dict[str, Any] = {
            "connect_timeout": connect_timeout_s,
            "application_name": "botmox-api",
            "options": f"-c statement_timeout={statement_timeout_ms} -c lock_timeout={statement_timeout_ms}",
        }
        self._pool: AsyncConnectionPool[psycopg.AsyncConnection[dict[str, object]]] = AsyncConnectionPool(
            dsn,
            connection_class=psycopg.AsyncConnection[dict[str, object]],
            kwargs={
                "autocommit": True,  # transactions are explicit, one per call
                "row_factory": dict_row,
                **connect_kwargs,
            },
            min_size=min_size,
            max_size=max_size,
            open=False,
            check=AsyncConnectionPool.check_connection,
            timeout=pool_timeout_s,
            reconnect_timeout=reconnect_timeout_s,
            name="botmox-storage-policy",
        )
        # Named apart so an operator can tell the probe from user traffic in pg_stat_activity.
        self._readiness = ReadinessConnection(
            dsn, {**connect_kwargs, "application_name": "botmox-api-readiness"}
        )
        self._open_lock = asyncio.Lock()
        self._opened = False

    def _declared_tenant(self, tenant_id: str) -> str:
        """The tenant each transaction declares for RLS. A seam for the RLS tests, which
        declare another tenant on purpose; the application never overrides it."""
        return tenant_id

    async def _open_pool(self) -> AsyncConnectionPool[psycopg.AsyncConnection[dict[str, object]]]:
        if not self._opened:
            async with self._open_lock:
                if not self._opened:
                    await self._pool.open(wait=False)
                    self._opened = True
        return self._pool

    async def _call(
        self, tenant_id: str, uid: str | None, query: LiteralString, params: tuple[object, ...]
    ) -> list[dict[str, object]]:
        claims = json.dumps(request_claims(self._declared_tenant(tenant_id), uid))
        pool = await self._open_pool()
        async with pool.connection() as conn, conn.transaction():
            await conn.execute(_DECLARE_CLAIMS, (claims,))
            cursor = await conn.execute(query, params)
            return await cursor.fetchall()

    async def read(self, tenant_id: str, *, uid: str | None = None) -> StoragePolicy | None:
        try:
            rows = await self._call(tenant_id, uid, _READ, (tenant_id,))
            return policy_from_row(rows[0]) if rows else None
        except Exception as error:
            raise query_failed("supabase", "read", STORAGE_POLICY_SUBJECT, self._reason(error)) from error

    async def replace(
        self,
        tenant_id: str,
        changes: StoragePolicyChanges,
        *,
        updated_by: str,
        if_match: IfMatch | None = None,
    ) -> StoragePolicy:
        return await self._write(_REPLACE, tenant_id, changes, updated_by, if_match)

    async def merge(
        self,
        tenant_id: str,
        changes: StoragePolicyChanges,
        *,
        updated_by: str,
        if_match: IfMatch | None = None,
    ) -> StoragePolicy:
        return await self._write(_MERGE, tenant_id, changes, updated_by, if_match)

    async def _write(
        self,
        query: LiteralString,
        tenant_id: str,
        changes: StoragePolicyChanges,
        updated_by: str,
        if_match: IfMatch | None,
    ) -> StoragePolicy:
        versions, if_exists = if_match_arguments(if_match)
        params = (tenant_id, changes.operational, changes.sync_enabled, versions, if_exists)
        try:
            rows = await self._call(tenant_id, updated_by, query, params)
            if not rows:
                raise _NoRow
            return policy_from_row(rows[0])
        except psycopg.Error as error:
            if error.sqlstate == VERSION_CONFLICT_SQLSTATE:
                current = await version_at_conflict(
                    lambda tenant: self.read(tenant, uid=updated_by), tenant_id, error.diag.message_detail
                )
                raise VersionConflict("supabase", current) from error
            raise query_failed("supabase", "write", STORAGE_POLICY_SUBJECT, self._reason(error)) from error
        except Exception as error:
            raise query_failed("supabase", "write", STORAGE_POLICY_SUBJECT, self._reason(error)) from error

    def _reason(self, error: BaseException) -> str:
        # The readiness connection reports a failed connect in the pool's words: one reason, whichever
        # connection found the database unreachable.
        if isinstance(error, PoolTimeout | ReadinessConnectFailed):
            return (
                "Database unreachable or refusing connections:"
                f" no connection within {self._pool_timeout_s:g} s"
            )
        if isinstance(error, psycopg.Error):
            if error.sqlstate:
                primary = error.diag.message_primary or type(error).__name__
                return f"SQLSTATE {error.sqlstate}: {primary}"
            return f"Database connection failed ({type(error).__name__})"
        if isinstance(error, _NoRow):
            return "The storage_policy function returned no row"
        if isinstance(error, MalformedRow):
            return f"Unexpected value in column {error}"
        return f"Unexpected error ({type(error).__name__})"

    async def check_ready(self) -> Readiness:
        """Ready when a connection works, the migration's table and functions exist, and this
        role may use them. Runs on the readiness connection, never on the pool's."""
        try:
            rows = await self._readiness.check_schema()
        except Exception as error:
            return Readiness(False, self._reason(error))
        return readiness_from_rows(rows)

    async def aclose(self) -> None:
        await self._readiness.aclose()
        if self._opened:
            await self._pool.close()
