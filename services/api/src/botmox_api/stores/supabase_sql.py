"""Each tenant's storage policy in Supabase's PostgreSQL, over SQL (the transport the VPS uses).

The store connects as the ``botmox_api`` login role through an asyncpg pool. Every call is ONE
statement, hence one round trip and its own transaction: a ``botmox.api_storage_policy_*`` function
(migration ``20261206110000_storage_policy_api_calls``) declares the caller as
``request.jwt.claims`` (local to that transaction: the tenant in ``app_metadata``, the principal's
uid as ``sub``, as PostgREST would from a verified JWT) and calls the public function. Row-level
security confines the statement to that tenant, the functions refuse any other ``p_tenant_id``, and
they record ``sub`` as ``updated_by``.

The same class is the cutover tool's Supabase side (``StoragePolicyBackfillStore``), built from an
administrator's DSN: ``tenant_batches``, ``read_stored`` and ``write_stored`` call the
``botmox.backfill_storage_policy_*`` functions (migration ``20261206140000_storage_policy_backfill``),
one statement each, without claims; the API's role may not call them.

Failure behaviour, by design:
- The pool is created by the first call (its first connection is that call's): start-up never
  needs the database. asyncpg keeps ``min_size`` connections open from then on.
- Short connect, pool-wait and statement timeouts: a dead database is a ``StoreQueryFailed`` within
  ``pool_timeout_s`` (connection attempts are retried until then), not a hang.
- No check per checkout and no reset query per release: nothing a call does outlives its
  statement (the claims are transaction-local, no session state is ever set), so the connection is
  handed back as it was. Recovery without a restart: asyncpg replaces a connection the server
  closed when it is next acquired, and closes one that broke during a call when it is released, so
  a broken connection fails at most the call that found it broken.
- Readiness runs on a connection of its own (``ReadinessConnection``, reopened when the server
  dropped it), so health checks never wait for, nor take, a connection of the pool.
- The pool belongs to the event loop that first used it (the API has one loop).
- asyncpg prepares each statement once per connection and caches it (``statement_cache_size``);
  behind a transaction-mode pooler (Supavisor port 6543, PgBouncer) set the cache size to 0.
"""

from __future__ import annotations

import asyncio
import json
import urllib.parse
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from typing import Any, Final

import asyncpg
from psycopg import ProgrammingError
from psycopg.conninfo import conninfo_to_dict

from botmox_api.model import (
    STORAGE_POLICY_SUBJECT,
    DataBackend,
    IfMatch,
    InvalidStoredPolicy,
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
    stored_policy_from_row,
    version_at_conflict,
)

VERSION_CONFLICT_SQLSTATE: Final = "BM412"
DEFAULT_STATEMENT_CACHE_SIZE: Final = 100  # asyncpg's own default

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

# The cutover tool's calls (migration 20261206140000_storage_policy_backfill), one statement each,
# without claims: SECURITY DEFINER functions only an administrator's DSN may call. Parameters:
# tenants $1 after, $2 limit; read $1 tenant ids; write $1 tenant id, $2 operational, $3 sync_enabled,
# $4 updated_at_ms, $5 updated_by, $6 version, $7 expected version (NULL: nothing stored).
BACKFILL_TENANTS_SQL: Final = (
    "select tenant_id from botmox.backfill_storage_policy_tenants($1, $2) as tenant_id"
)
BACKFILL_READ_SQL: Final = (
    "select tenant_id, operational, sync_enabled, updated_at_ms, updated_by, version"
    " from botmox.backfill_storage_policy_read($1)"
)
BACKFILL_WRITE_SQL: Final = (
    "select tenant_id from botmox.backfill_storage_policy_write($1, $2, $3, $4, $5, $6, $7)"
)


def claims_text(tenant_id: str, uid: str | None) -> str:
    """The ``p_claims`` argument of the statements above: ``request_claims`` as compact JSON text."""
    return json.dumps(request_claims(tenant_id, uid), separators=(",", ":"))


# --- Connecting.

# Set by the store itself, whatever the DSN says (as libpq keyword arguments override a conninfo).
_STORE_OWNED_PARAMETERS: Final = frozenset({"connect_timeout", "application_name", "options"})


class InvalidConnectionString(Exception):
    """``SUPABASE_DB_URL`` does not parse (the message never quotes it: it holds the password)."""


def asyncpg_dsn(conninfo: str) -> str:
    """``conninfo`` (a libpq URI or ``key=value`` string, as ``SUPABASE_DB_URL`` may be) as the URI
    asyncpg reads, every parameter in its query string; the parameters the store sets itself are
    left out. Raises ``InvalidConnectionString``."""
    try:
        params = conninfo_to_dict(conninfo)
    except ProgrammingError:
        raise InvalidConnectionString("SUPABASE_DB_URL is not a valid PostgreSQL connection string") from None
    kept = {key: str(value) for key, value in params.items() if key not in _STORE_OWNED_PARAMETERS}
    return "postgresql://?" + urllib.parse.urlencode(kept)


class ConnectionUnavailable(Exception):
    """No connection within the pool timeout; ``__cause__`` is the last attempt's error."""


async def _keep_session(connection: asyncpg.Connection) -> None:
    """The pool's reset on release: nothing to reset. asyncpg's default sends
    ``pg_advisory_unlock_all(); CLOSE ALL; UNLISTEN *; RESET ALL`` (one more round trip per call)
    for state this store never creates: no advisory lock, cursor, LISTEN or session setting, and
    the claims end with their statement. An open transaction, which no call leaves, would still be
    rolled back: asyncpg does that before calling this."""


# --- Readiness.
# What "ready" means for the SQL transport: the migrations' table and functions exist, and the
# role the API logs in as may use them. Checked in one statement over a connection of its own
# (``ReadinessConnection``), never one of the pool's: readiness must not queue behind user traffic,
# nor take a connection from it.
#
# ``botmox.request_subject`` stands for the second migration (caller identity): without it the
# functions still want ``p_updated_by``, which the API no longer sends. The ``botmox.api_*``
# functions are the third (the statements the store sends).

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
  (5, 'botmox.request_subject', 'function', to_regprocedure('botmox.request_subject()')::oid),
  (6, 'botmox.api_storage_policy_read', 'function',
      to_regprocedure('botmox.api_storage_policy_read(text,text)')::oid),
  (7, 'botmox.api_storage_policy_replace', 'function',
      to_regprocedure('botmox.api_storage_policy_replace(text,text,text,boolean,bigint[],boolean)')::oid),
  (8, 'botmox.api_storage_policy_merge', 'function',
      to_regprocedure('botmox.api_storage_policy_merge(text,text,text,boolean,bigint[],boolean)')::oid)
) as objects(position, name, kind, object)
order by position
"""


def readiness_from_rows(rows: Sequence[Mapping[str, object]]) -> Readiness:
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

    def __init__(self, connect: Callable[[], Awaitable[asyncpg.Connection]]) -> None:
        self._open = connect
        self._lock = asyncio.Lock()
        self._conn: asyncpg.Connection | None = None
        self._closed = False

    async def check_schema(self, query: str = "", *args: object) -> list[asyncpg.Record]:
        """The rows of ``query`` (``CHECK_SCHEMA`` by default), one row per object with ``name``,
        ``present``, ``allowed``; raises ``ReadinessConnectFailed`` or an asyncpg error."""
        query = query or CHECK_SCHEMA
        async with self._lock:
            if self._closed:
                raise asyncpg.InterfaceError("the store is closed")
            conn = self._conn
            if conn is not None and not conn.is_closed():
                try:
                    return await self._query(conn, query, *args)
                except Exception:
                    if not conn.is_closed():
                        raise
                    # The server restarted or dropped the connection since the last check (it may
                    # only notice now): try once on a new one.
            self._drop()
            self._conn = await self._connect()
            return await self._query(self._conn, query, *args)

    async def _connect(self) -> asyncpg.Connection:
        try:
            return await self._open()
        except Exception as error:
            raise ReadinessConnectFailed from error

    async def _query(self, conn: asyncpg.Connection, query: str, *args: object) -> list[asyncpg.Record]:
        try:
            rows: list[asyncpg.Record] = await conn.fetch(query, *args)
        except asyncio.CancelledError:
            # A check cut short by its timeout leaves the connection mid-statement.
            self._drop()
            raise
        return rows

    def _drop(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.terminate()

    async def aclose(self) -> None:
        async with self._lock:
            self._closed = True
            conn, self._conn = self._conn, None
            if conn is not None and not conn.is_closed():
                try:
                    await conn.close(timeout=_CLOSE_TIMEOUT_S)
                except Exception:
                    conn.terminate()


# --- The store.

_CLOSE_TIMEOUT_S: Final = 5.0
# Pauses between connection attempts while a call waits for a connection (within pool_timeout_s).
_RETRY_PAUSE_S: Final = (0.05, 0.1, 0.2, 0.4)


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
        connect_timeout_s: float = 3.0,
        pool_timeout_s: float = 3.0,
        statement_timeout_ms: int = 5000,
        statement_cache_size: int = DEFAULT_STATEMENT_CACHE_SIZE,
        application_name: str = "botmox-api",
    ) -> None:
        self._dsn = dsn
        self._application_name = application_name
        self._min_size = min_size
        self._max_size = max_size
        self._pool_timeout_s = pool_timeout_s
        self._connect_kwargs: dict[str, Any] = {
            "timeout": connect_timeout_s,
            "statement_cache_size": statement_cache_size,
            "server_settings": {
                "application_name": application_name,
                "statement_timeout": str(statement_timeout_ms),
                "lock_timeout": str(statement_timeout_ms),
            },
        }
        self._readiness = ReadinessConnection(self._connect_readiness)
        self._open_lock = asyncio.Lock()
        # One turn per connection of the pool, handed out in arrival order (asyncio.Semaphore is
        # FIFO and lets no newcomer take a turn while others wait). asyncpg's pool gives a released
        # connection to whichever call asks first, so on a busy loop a waiting call could be overtaken
        # by new ones again and again: a latency tail of tens of milliseconds at 32 concurrent calls
        # (docs/performance.md). Holding a turn, a call finds a connection free or being opened.
        self._turns = asyncio.Semaphore(max_size)
        self._pool: asyncpg.Pool | None = None
        self._closed = False

    def _declared_tenant(self, tenant_id: str) -> str:
        """The tenant each call declares for RLS. A seam for the RLS tests, which declare another
        tenant on purpose; the application never overrides it."""
        return tenant_id

    async def _connect_readiness(self) -> asyncpg.Connection:
        return await self.open_connection("readiness")

    async def open_connection(self, purpose: str) -> asyncpg.Connection:
        """A connection of its own, outside the pool (the readiness probe's, the agent tunnel's
        listening session), named ``<application_name>-<purpose>`` so an operator can tell it from
        user traffic in pg_stat_activity. The caller closes it."""
        server_settings = {
            **self._connect_kwargs["server_settings"],
            "application_name": f"{self._application_name}-{purpose}",
        }
        return await asyncpg.connect(
            asyncpg_dsn(self._dsn), **{**self._connect_kwargs, "server_settings": server_settings}
        )

    async def _open_pool(self) -> asyncpg.Pool:
        if self._pool is None:
            async with self._open_lock:
                if self._closed:
                    raise asyncpg.InterfaceError("the store is closed")
                if self._pool is None:
                    # Opens min_size connections (the first call's among them); a failure leaves no
                    # pool behind, and the next attempt starts afresh.
                    self._pool = await asyncpg.create_pool(
                        asyncpg_dsn(self._dsn),
                        min_size=self._min_size,
                        max_size=self._max_size,
                        reset=_keep_session,
                        **self._connect_kwargs,
                    )
        return self._pool

    def _no_connection(self, last_error: str | None = None) -> ConnectionUnavailable:
        """A call's budget (``pool_timeout_s``) ran out before it had a connection."""
        waited = f"no connection within {self._pool_timeout_s:g} s"
        return ConnectionUnavailable(f"{waited} ({last_error})" if last_error else waited)

    async def _take_turn(self, deadline: float) -> None:
        """Wait for a turn (``_turns``) until ``deadline``; raises ``ConnectionUnavailable``."""
        try:
            async with asyncio.timeout_at(deadline):
                await self._turns.acquire()
        except TimeoutError as error:
            raise self._no_connection() from error

    async def _acquire(self, deadline: float) -> tuple[asyncpg.Pool, Any]:
        """The pool and one of its connections by ``deadline``, waiting for a free one and retrying
        failed connection attempts until then; raises ``ConnectionUnavailable``."""
        loop = asyncio.get_running_loop()
        attempt = 0
        while True:
            try:
                async with asyncio.timeout_at(deadline):
                    pool = await self._open_pool()
                    return pool, await pool.acquire()
            except TimeoutError as error:
                raise self._no_connection() from error
            except InvalidConnectionString as error:
                raise ConnectionUnavailable(str(error)) from error
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as error:
                if self._closed:
                    raise
                # The connection attempt failed (refused, reset, the server starting or refusing
                # the login): try again while the budget lasts.
                pause = _RETRY_PAUSE_S[min(attempt, len(_RETRY_PAUSE_S) - 1)]
                attempt += 1
                if deadline - loop.time() <= pause:
                    raise self._no_connection(f"{type(error).__name__}: {error}") from error
                await asyncio.sleep(pause)

    async def fetch(
        self, tenant_id: str | None, uid: str | None, query: str, *args: object
    ) -> list[asyncpg.Record]:
        """One statement on a pooled connection: the claims first, then ``args``. No claims for
        ``tenant_id=None``: an administrator's statement (the backfill functions take none) or an
        agent's (authenticated by its digests). Public because the agents store
        (``agents_sql.SqlAgentStore``) sends its statements through this very pool and turns."""
        claims = None if tenant_id is None else claims_text(self._declared_tenant(tenant_id), uid)
        deadline = asyncio.get_running_loop().time() + self._pool_timeout_s
        await self._take_turn(deadline)
        try:
            pool, conn = await self._acquire(deadline)
            try:
                if claims is None:
                    rows: list[asyncpg.Record] = await conn.fetch(query, *args)
                else:
                    rows = await conn.fetch(query, claims, *args)
            finally:
                await pool.release(conn)
        finally:
            self._turns.release()
        return rows

    async def read(self, tenant_id: str, *, uid: str | None = None) -> StoragePolicy | None:
        try:
            rows = await self.fetch(tenant_id, uid, READ_SQL, tenant_id)
            return policy_from_row(rows[0]) if rows else None
        except Exception as error:
            raise query_failed("supabase", "read", STORAGE_POLICY_SUBJECT, self.reason(error)) from error

    async def replace(
        self,
        tenant_id: str,
        changes: StoragePolicyChanges,
        *,
        updated_by: str,
        if_match: IfMatch | None = None,
    ) -> StoragePolicy:
        return await self._write(REPLACE_SQL, tenant_id, changes, updated_by, if_match)

    async def merge(
        self,
        tenant_id: str,
        changes: StoragePolicyChanges,
        *,
        updated_by: str,
        if_match: IfMatch | None = None,
    ) -> StoragePolicy:
        return await self._write(MERGE_SQL, tenant_id, changes, updated_by, if_match)

    async def _write(
        self,
        query: str,
        tenant_id: str,
        changes: StoragePolicyChanges,
        updated_by: str,
        if_match: IfMatch | None,
    ) -> StoragePolicy:
        versions, if_exists = if_match_arguments(if_match)
        try:
            rows = await self.fetch(
                tenant_id,
                updated_by,
                query,
                tenant_id,
                changes.operational,
                changes.sync_enabled,
                versions,
                if_exists,
            )
            if not rows:
                raise _NoRow
            return policy_from_row(rows[0])
        except asyncpg.PostgresError as error:
            if error.sqlstate == VERSION_CONFLICT_SQLSTATE:
                current = await version_at_conflict(
                    lambda tenant: self.read(tenant, uid=updated_by), tenant_id, error.detail
                )
                raise VersionConflict("supabase", current) from error
            raise query_failed("supabase", "write", STORAGE_POLICY_SUBJECT, self.reason(error)) from error
        except Exception as error:
            raise query_failed("supabase", "write", STORAGE_POLICY_SUBJECT, self.reason(error)) from error

    # --- The backfill seam (``StoragePolicyBackfillStore``): an administrator's DSN, no claims.

    async def tenant_batches(self, batch_size: int, *, after: str | None = None) -> AsyncIterator[list[str]]:
        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        while True:
            try:
                rows = await self.fetch(None, None, BACKFILL_TENANTS_SQL, after, batch_size)
            except Exception as error:
                raise query_failed("supabase", "read", STORAGE_POLICY_SUBJECT, self.reason(error)) from error
            batch = [str(row["tenant_id"]) for row in rows]
            if batch:
                yield batch
            if len(batch) < batch_size:
                return
            after = batch[-1]

    async def read_stored(self, tenant_ids: Sequence[str]) -> dict[str, StoragePolicy | InvalidStoredPolicy]:
        if not tenant_ids:
            return {}
        try:
            rows = await self.fetch(None, None, BACKFILL_READ_SQL, list(tenant_ids))
        except Exception as error:
            raise query_failed("supabase", "read", STORAGE_POLICY_SUBJECT, self.reason(error)) from error
        stored: dict[str, StoragePolicy | InvalidStoredPolicy] = {}
        for row in rows:
            stored[str(row["tenant_id"])] = stored_policy_from_row(row)
        return stored

    async def write_stored(
        self, tenant_id: str, policy: StoragePolicy, *, expected_version: int | None
    ) -> None:
        try:
            rows = await self.fetch(
                None,
                None,
                BACKFILL_WRITE_SQL,
                tenant_id,
                policy.operational,
                policy.sync_enabled,
                policy.updated_at,
                policy.updated_by,
                policy.version,
                expected_version,
            )
            if not rows:
                raise _NoRow
        except asyncpg.PostgresError as error:
            if error.sqlstate == VERSION_CONFLICT_SQLSTATE:
                current = await version_at_conflict(self._stored_version, tenant_id, error.detail)
                raise VersionConflict("supabase", current) from error
            raise query_failed("supabase", "write", STORAGE_POLICY_SUBJECT, self.reason(error)) from error
        except Exception as error:
            raise query_failed("supabase", "write", STORAGE_POLICY_SUBJECT, self.reason(error)) from error

    async def _stored_version(self, tenant_id: str) -> StoragePolicy | None:
        stored = (await self.read_stored([tenant_id])).get(tenant_id)
        return stored if isinstance(stored, StoragePolicy) else None

    def reason(self, error: BaseException) -> str:
        """Why a call failed, in words free of the DSN; the agents store reports with it too."""
        # The readiness connection reports a failed connect in the pool's words: one reason, whichever
        # connection found the database unreachable.
        if isinstance(error, ConnectionUnavailable | ReadinessConnectFailed):
            return (
                "Database unreachable or refusing connections:"
                f" no connection within {self._pool_timeout_s:g} s"
            )
        # asyncpg's own "connection closed mid-call" carries a client-side SQLSTATE (08003); like a
        # reset socket, it is the connection failing, not the server answering.
        if isinstance(
            error, asyncpg.exceptions.ConnectionDoesNotExistError | asyncpg.InterfaceError | OSError
        ):
            return f"Database connection failed ({type(error).__name__})"
        if isinstance(error, asyncpg.PostgresError) and error.sqlstate:
            primary = getattr(error, "message", None) or type(error).__name__
            return f"SQLSTATE {error.sqlstate}: {primary}"
        if isinstance(error, _NoRow):
            return "The storage_policy function returned no row"
        if isinstance(error, MalformedRow):
            return f"Unexpected value in column {error}"
        return f"Unexpected error ({type(error).__name__})"

    async def check_ready(self, schema: str = CHECK_SCHEMA, *args: object) -> Readiness:
        """Ready when a connection works, the migrations' table and functions exist, and this
        role may use them. Runs on the readiness connection, never on the pool's. ``schema``: another
        check of the same shape (``name``, ``present``, ``allowed``), the agents store's."""
        try:
            rows = await self._readiness.check_schema(schema, *args)
        except Exception as error:
            return Readiness(False, self.reason(error))
        return readiness_from_rows(rows)

    async def aclose(self) -> None:
        await self._readiness.aclose()
        async with self._open_lock:
            self._closed = True
            pool, self._pool = self._pool, None
        if pool is not None:
            try:
                await asyncio.wait_for(pool.close(), _CLOSE_TIMEOUT_S)
            except TimeoutError:
                pool.terminate()
