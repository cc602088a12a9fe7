"""The SQL transport specifically: one statement and one round trip per call, RLS holds when the
application errs, readiness reasons, and a database that is unreachable or not migrated."""

from __future__ import annotations

import asyncio
import socket
import urllib.parse
import uuid
from collections.abc import AsyncIterator
from typing import Any

import psycopg
import pytest
from psycopg import sql
from tcp_relay import PG_ROUND_TRIP, PG_STATEMENT, PgStatements, relay

from botmox_api.model import IfMatch, StoragePolicyChanges, StoreError, StoreQueryFailed, VersionConflict
from botmox_api.stores.supabase_sql import InvalidConnectionString, SqlStoragePolicyStore, asyncpg_dsn


class MisdeclaringStore(SqlStoragePolicyStore):
    """Declares one tenant to RLS while passing another to the functions: the application bug
    that row-level security must contain."""

    def __init__(self, dsn: str, declared_tenant: str) -> None:
        super().__init__(dsn)
        self.declared = declared_tenant

    def _declared_tenant(self, tenant_id: str) -> str:
        return self.declared


@pytest.fixture
async def sql_store(pg_database: Any) -> AsyncIterator[SqlStoragePolicyStore]:
    store = SqlStoragePolicyStore(pg_database.api_dsn)
    yield store
    await store.aclose()


@pytest.fixture
async def intruder(pg_database: Any, tenant: str) -> AsyncIterator[SqlStoragePolicyStore]:
    """A store whose transactions declare ``tenant`` whatever tenant they ask for."""
    store = MisdeclaringStore(pg_database.api_dsn, declared_tenant=tenant)
    yield store
    await store.aclose()


async def test_rls_hides_another_tenants_row(
    sql_store: SqlStoragePolicyStore, intruder: SqlStoragePolicyStore, tenant: str
) -> None:
    victim = f"v-{uuid.uuid4().hex[:12]}"
    await sql_store.replace(victim, StoragePolicyChanges(operational="local"), updated_by="owner")
    assert await intruder.read(victim) is None


@pytest.mark.parametrize("mode", ["replace", "merge"])
@pytest.mark.parametrize("victim_has_row", [True, False], ids=["existing-row", "no-row"])
async def test_rls_refuses_a_cross_tenant_write(
    sql_store: SqlStoragePolicyStore,
    intruder: SqlStoragePolicyStore,
    mode: str,
    victim_has_row: bool,
) -> None:
    victim = f"v-{uuid.uuid4().hex[:12]}"
    before = None
    if victim_has_row:
        before = await sql_store.replace(
            victim, StoragePolicyChanges(operational="local"), updated_by="owner"
        )
    write = intruder.replace if mode == "replace" else intruder.merge
    with pytest.raises(StoreQueryFailed) as raised:
        await write(
            victim, StoragePolicyChanges(operational="cloud", sync_enabled=True), updated_by="intruder"
        )
    assert raised.value.message == "Failed to write storage policy to Supabase"
    assert await sql_store.read(victim) == before


async def test_rls_refuses_a_cross_tenant_conditional_write(
    sql_store: SqlStoragePolicyStore, intruder: SqlStoragePolicyStore
) -> None:
    victim = f"v-{uuid.uuid4().hex[:12]}"
    before = await sql_store.replace(victim, StoragePolicyChanges(), updated_by="owner")
    with pytest.raises(StoreError):
        await intruder.merge(
            victim,
            StoragePolicyChanges(sync_enabled=True),
            updated_by="intruder",
            if_match=IfMatch(any_version=True),
        )
    assert await sql_store.read(victim) == before


def _closed_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


async def test_unreachable_database_fails_with_a_reason_free_of_the_dsn() -> None:
    password = "pw-" + uuid.uuid4().hex
    store = SqlStoragePolicyStore(
        f"postgresql://botmox_api:{password}@127.0.0.1:{_closed_port()}/postgres", pool_timeout_s=0.5
    )
    try:
        readiness = await store.check_ready()
        assert readiness.ready is False
        assert readiness.reason == "Database unreachable or refusing connections: no connection within 0.5 s"
        with pytest.raises(StoreQueryFailed) as raised:
            await store.merge("acme", StoragePolicyChanges(), updated_by="u")
        assert raised.value.backend == "supabase"
        assert raised.value.message == "Failed to write storage policy to Supabase"
        assert password not in str(raised.value.details)
    finally:
        await store.aclose()


async def test_not_ready_when_the_migration_is_not_applied(pg_database: Any) -> None:
    bare = f"bare_{uuid.uuid4().hex[:12]}"
    async with await psycopg.AsyncConnection.connect(pg_database.admin_dsn, autocommit=True) as admin:
        await admin.execute(sql.SQL("create database {} template template0").format(sql.Identifier(bare)))
    store = SqlStoragePolicyStore(psycopg.conninfo.make_conninfo(pg_database.admin_dsn, dbname=bare))
    try:
        readiness = await store.check_ready()
        assert readiness.ready is False
        assert readiness.reason == (
            "Migration not applied: missing public.storage_policies, public.storage_policy_read,"
            " public.storage_policy_replace, public.storage_policy_merge, botmox.request_subject,"
            " botmox.api_storage_policy_read, botmox.api_storage_policy_replace,"
            " botmox.api_storage_policy_merge"
        )
        with pytest.raises(StoreQueryFailed) as raised:
            await store.read("acme")
        assert raised.value.details["reason"] == 'SQLSTATE 3F000: schema "botmox" does not exist'

    finally:
        await store.aclose()
        async with await psycopg.AsyncConnection.connect(pg_database.admin_dsn, autocommit=True) as admin:
            await admin.execute(sql.SQL("drop database {} with (force)").format(sql.Identifier(bare)))


async def test_not_ready_when_only_the_first_migration_is_applied(pg_database: Any) -> None:
    """Without the caller-identity migration the functions still require p_updated_by, which the
    store no longer sends: readiness must say so instead of every write failing."""
    async with await psycopg.AsyncConnection.connect(pg_database.admin_dsn, autocommit=True) as admin:
        await admin.execute("drop function botmox.request_subject()")
    store = SqlStoragePolicyStore(pg_database.api_dsn)
    try:
        readiness = await store.check_ready()
        assert (readiness.ready, readiness.reason) == (
            False,
            "Migration not applied: missing botmox.request_subject",
        )
    finally:
        await store.aclose()


async def test_not_ready_when_the_api_calls_migration_is_not_applied(pg_database: Any) -> None:
    """The store's statements call the third migration's botmox.api_* functions: an API deployed
    before that migration must say so on readiness, and each call fails with the reason."""
    async with await psycopg.AsyncConnection.connect(pg_database.admin_dsn, autocommit=True) as admin:
        await admin.execute("drop function botmox.api_storage_policy_read(text, text)")
        await admin.execute(
            "drop function botmox.api_storage_policy_merge(text, text, text, boolean, bigint[], boolean)"
        )
    store = SqlStoragePolicyStore(pg_database.api_dsn)
    try:
        readiness = await store.check_ready()
        assert (readiness.ready, readiness.reason) == (
            False,
            "Migration not applied: missing botmox.api_storage_policy_read, botmox.api_storage_policy_merge",
        )
        with pytest.raises(StoreQueryFailed) as raised:
            await store.read("acme")
        assert str(raised.value.details["reason"]).startswith(
            "SQLSTATE 42883: function botmox.api_storage_policy_read("
        )
    finally:
        await store.aclose()


async def test_not_ready_when_the_role_may_not_use_a_function(pg_database: Any) -> None:
    async with await psycopg.AsyncConnection.connect(pg_database.admin_dsn, autocommit=True) as admin:
        await admin.execute(
            "revoke execute on function"
            " public.storage_policy_merge(text, text, text, boolean, bigint[], boolean) from botmox_api"
        )
    store = SqlStoragePolicyStore(pg_database.api_dsn)
    try:
        readiness = await store.check_ready()
        assert (readiness.ready, readiness.reason) == (
            False,
            "The API's database role may not use public.storage_policy_merge",
        )
    finally:
        await store.aclose()


async def _api_backends(admin: psycopg.AsyncConnection[Any], database: str) -> dict[str, int]:
    """The store's server processes in ``database``, by application name."""
    cursor = await admin.execute(
        "select application_name, count(*) from pg_stat_activity"
        " where datname = %s and usename = 'botmox_api' group by application_name",
        (database,),
    )
    return {str(name): int(count) for name, count in await cursor.fetchall()}


async def test_readiness_runs_on_its_own_connection_and_reopens_it_when_dropped(
    sql_store: SqlStoragePolicyStore, pg_database: Any
) -> None:
    async with await psycopg.AsyncConnection.connect(pg_database.admin_dsn, autocommit=True) as admin:
        for _ in range(3):
            assert (await sql_store.check_ready()).ready is True
        # One connection, named apart, and the user pool was never even opened.
        assert await _api_backends(admin, pg_database.name) == {"botmox-api-readiness": 1}

        await admin.execute(
            "select pg_terminate_backend(pid) from pg_stat_activity"
            " where datname = %s and application_name = 'botmox-api-readiness'",
            (pg_database.name,),
        )
        for _ in range(200):  # the terminated backend leaves pg_stat_activity within milliseconds
            if not await _api_backends(admin, pg_database.name):
                break
            await asyncio.sleep(0.01)
        assert (await sql_store.check_ready()).ready is True
        assert await _api_backends(admin, pg_database.name) == {"botmox-api-readiness": 1}


CALLS_PER_KIND = 5


async def test_each_call_is_one_statement_in_one_round_trip(pg_database: Any, tenant: str) -> None:
    """What PostgreSQL receives per call, counted on the wire: one statement (no BEGIN, no claims
    statement, no COMMIT, no check on checkout, no reset on release) in one round trip, for reads,
    writes and a write refused by its precondition alike. Warmed up first: the first call of a
    statement on a connection also prepares it (one more round trip, once per connection)."""
    async with relay("127.0.0.1", pg_database.port, PgStatements()) as wire:
        store = SqlStoragePolicyStore(
            psycopg.conninfo.make_conninfo(pg_database.api_dsn, host="127.0.0.1", port=wire.port)
        )
        try:
            stored = await store.replace(tenant, StoragePolicyChanges(), updated_by="u")
            await store.merge(tenant, StoragePolicyChanges(), updated_by="u")
            await store.read(tenant, uid="u")
            calls = {
                "read": lambda: store.read(tenant, uid="u"),
                "merge": lambda: store.merge(tenant, StoragePolicyChanges(sync_enabled=True), updated_by="u"),
                "replace": lambda: store.replace(
                    tenant, StoragePolicyChanges(operational="local"), updated_by="u"
                ),
            }
            for kind, call in calls.items():
                wire.counts.clear()
                for _ in range(CALLS_PER_KIND):
                    await call()
                seen = {key: wire.counts[key] for key in (PG_STATEMENT, PG_ROUND_TRIP)}
                assert seen == {PG_STATEMENT: CALLS_PER_KIND, PG_ROUND_TRIP: CALLS_PER_KIND}, kind

            wire.counts.clear()
            with pytest.raises(VersionConflict) as conflict:
                await store.merge(
                    tenant,
                    StoragePolicyChanges(),
                    updated_by="u",
                    if_match=IfMatch(versions=frozenset({stored.version})),
                )
            assert conflict.value.current_version == stored.version + 1 + 2 * CALLS_PER_KIND
            assert {key: wire.counts[key] for key in (PG_STATEMENT, PG_ROUND_TRIP)} == {
                PG_STATEMENT: 1,
                PG_ROUND_TRIP: 1,
            }
        finally:
            await store.aclose()


async def test_without_a_statement_cache_each_call_still_is_one_statement(
    pg_database: Any, tenant: str
) -> None:
    """``statement_cache_size=0`` (behind a transaction-mode pooler, which cannot keep prepared
    statements): every call prepares its statement unnamed, one more round trip, still one
    statement and no transaction; conflicts and reads behave the same."""
    async with relay("127.0.0.1", pg_database.port, PgStatements()) as wire:
        store = SqlStoragePolicyStore(
            psycopg.conninfo.make_conninfo(pg_database.api_dsn, host="127.0.0.1", port=wire.port),
            statement_cache_size=0,
        )
        try:
            stored = await store.replace(tenant, StoragePolicyChanges(operational="local"), updated_by="u")
            wire.counts.clear()
            merged = await store.merge(tenant, StoragePolicyChanges(sync_enabled=True), updated_by="u2")
            assert (merged.version, merged.operational, merged.sync_enabled, merged.updated_by) == (
                stored.version + 1,
                "local",
                True,
                "u2",
            )
            assert await store.read(tenant, uid="u") == merged
            assert {key: wire.counts[key] for key in (PG_STATEMENT, PG_ROUND_TRIP)} == {
                PG_STATEMENT: 2,
                PG_ROUND_TRIP: 4,
            }
            with pytest.raises(VersionConflict) as conflict:
                await store.merge(
                    tenant, StoragePolicyChanges(), updated_by="u", if_match=IfMatch(versions=frozenset({1}))
                )
            assert conflict.value.current_version == merged.version
        finally:
            await store.aclose()


async def test_a_closed_store_says_so_instead_of_waiting_for_a_connection(
    pg_database: Any, tenant: str
) -> None:
    store = SqlStoragePolicyStore(pg_database.api_dsn, pool_timeout_s=0.5)
    await store.read(tenant)
    await store.aclose()
    with pytest.raises(StoreQueryFailed) as raised:
        await store.read(tenant)
    assert raised.value.details["reason"] == "Database connection failed (InterfaceError)"
    assert (await store.check_ready()).reason == "Database connection failed (InterfaceError)"


@pytest.mark.parametrize(
    "conninfo",
    [
        "host=/run/pg port=5433 user=botmox_api password='p @/:?&=+x' dbname=db sslmode=verify-full"
        " connect_timeout=9 application_name=other options='-c work_mem=1MB'",
        "postgresql://botmox_api:p%20%40%2F%3A%3F%26%3D%2Bx@%2Frun%2Fpg:5433/db?sslmode=verify-full"
        "&connect_timeout=9&application_name=other&options=-c%20work_mem%3D1MB",
    ],
    ids=["keywords", "uri"],
)
def test_either_form_of_the_dsn_reaches_asyncpg_whole(conninfo: str) -> None:
    """SUPABASE_DB_URL may be a libpq URI or key=value string; asyncpg reads URIs only. Every
    parameter arrives (quoting included) except those the store sets itself."""
    parsed = urllib.parse.urlsplit(asyncpg_dsn(conninfo))
    assert (parsed.scheme, parsed.netloc, parsed.path) == ("postgresql", "", "")
    assert dict(urllib.parse.parse_qsl(parsed.query, strict_parsing=True)) == {
        "host": "/run/pg",
        "port": "5433",
        "user": "botmox_api",
        "password": "p @/:?&=+x",
        "dbname": "db",
        "sslmode": "verify-full",
    }


def test_an_unparsable_dsn_is_refused_without_quoting_it() -> None:
    with pytest.raises(InvalidConnectionString) as raised:
        asyncpg_dsn("postgresql://botmox_api:pw-secret@[::1/botmox")
    assert "pw-secret" not in str(raised.value)
    assert raised.value.__cause__ is None
    assert raised.value.__suppress_context__
