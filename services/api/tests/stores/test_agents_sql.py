"""The agents SQL store on the harness's real PostgreSQL (the agents migration applied), logged in
as ``botmox_api``: every tenant call, its refusals as ``AgentRefused`` with the contract's SQLSTATE,
and tenant isolation through the claims each call presents."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable

import asyncpg
import pytest
from api_support import make_settings

from botmox_api.agents import ONLINE_WITHIN_S, AgentCommand, AgentRefused, new_secret, secret_digest
from botmox_api.model import JsonObject, StoreQueryFailed
from botmox_api.stores.agents_sql import SqlAgentStore
from botmox_api.stores.factory import stores_for
from botmox_api.stores.supabase_sql import SqlStoragePolicyStore
from harness.postgres.migrated import PgDatabase

CAPABILITIES = ("syncthing.status", "proxmox.vm.start")


@pytest.fixture
async def store(pg_database: PgDatabase) -> AsyncIterator[SqlAgentStore]:
    sql = SqlStoragePolicyStore(pg_database.api_dsn)
    yield SqlAgentStore(sql)
    await sql.aclose()


async def registered(store: SqlAgentStore, tenant: str) -> tuple[str, bytes]:
    """A new agent of ``tenant``: its id and its credential's digest."""
    code = new_secret()
    await store.create_pairing(tenant, uid="admin-1", code_hash=secret_digest(code))
    credential = secret_digest(new_secret())
    agent = await store.register(
        code_hash=secret_digest(code),
        credential_hash=credential,
        name="pve-host",
        version="1.0.0",
        capabilities=CAPABILITIES,
    )
    assert agent.tenant_id == tenant
    return agent.agent_id, credential


async def connect(pg_database: PgDatabase, agent_id: str, credential: bytes) -> None:
    """What the tunnel's hello records (the agent's own call, as botmox_api)."""
    conn = await asyncpg.connect(pg_database.api_dsn)
    try:
        await conn.fetch(
            "select * from botmox.api_agent_connect($1, $2, $3, $4, null)",
            uuid.UUID(agent_id),
            credential,
            uuid.uuid4(),
            "1.0.1",
        )
    finally:
        await conn.close()


def status_command(store: SqlAgentStore, tenant: str, agent: uuid.UUID) -> Awaitable[AgentCommand]:
    """``syncthing.status`` for ``agent`` as user ``u`` of ``tenant``: the command most tests send."""
    return store.enqueue_command(
        tenant,
        uid="u",
        agent_id=agent,
        kind="syncthing.status",
        params={},
        deadline_s=60,
        online_within_s=ONLINE_WITHIN_S,
    )


async def refusal(call: Awaitable[object]) -> AgentRefused:
    with pytest.raises(AgentRefused) as caught:
        await call
    return caught.value


async def test_pair_register_list_command_and_read(store: SqlAgentStore, pg_database: PgDatabase) -> None:
    agent_id, credential = await registered(store, "tenant-a")
    [listed] = await store.list_agents("tenant-a", uid="u", online_within_s=ONLINE_WITHIN_S)
    assert listed.agent_id == agent_id
    assert listed.online is False
    assert listed.last_seen_at is None
    assert listed.capabilities == CAPABILITIES
    assert listed.created_by == "admin-1"
    await connect(pg_database, agent_id, credential)
    [listed] = await store.list_agents("tenant-a", uid="u", online_within_s=ONLINE_WITHIN_S)
    assert listed.online is True
    assert listed.version == "1.0.1"
    assert listed.last_seen_at is not None
    command = await store.enqueue_command(
        "tenant-a",
        uid="user-1",
        agent_id=uuid.UUID(agent_id),
        kind="proxmox.vm.start",
        params={"vmid": 101, "node": "pve1"},
        deadline_s=60,
        online_within_s=ONLINE_WITHIN_S,
    )
    assert command.status == "queued"
    assert command.params == {"vmid": 101, "node": "pve1"}
    assert command.created_by == "user-1"
    read = await store.read_command(
        "tenant-a", uid="user-1", agent_id=uuid.UUID(agent_id), command_id=uuid.UUID(command.command_id)
    )
    assert read == command


async def test_a_code_used_twice_or_expired_is_bm401(store: SqlAgentStore, pg_database: PgDatabase) -> None:
    code = new_secret()
    await store.create_pairing("tenant-a", uid="admin-1", code_hash=secret_digest(code))

    def registration(code: str) -> Awaitable[object]:
        return store.register(
            code_hash=secret_digest(code),
            credential_hash=secret_digest(new_secret()),
            name="a",
            version="1",
            capabilities=(),
        )

    await registration(code)
    assert (await refusal(registration(code))).sqlstate == "BM401"
    expired = new_secret()
    await store.create_pairing("tenant-a", uid="admin-1", code_hash=secret_digest(expired))
    admin = await asyncpg.connect(pg_database.admin_dsn)
    try:
        await admin.execute(
            "update public.agent_pairings set created_at = now() - interval '11 minutes',"
            " expires_at = now() - interval '1 minute' where code_hash = $1",
            secret_digest(expired),
        )
    finally:
        await admin.close()
    assert (await refusal(registration(expired))).sqlstate == "BM401"
    assert (await refusal(registration(new_secret()))).sqlstate == "BM401"


async def test_another_tenant_cannot_list_revoke_command_or_read(
    store: SqlAgentStore, pg_database: PgDatabase
) -> None:
    agent_id, credential = await registered(store, "tenant-a")
    await connect(pg_database, agent_id, credential)
    agent = uuid.UUID(agent_id)
    command = await status_command(store, "tenant-a", agent)
    assert await store.list_agents("tenant-b", uid="u", online_within_s=ONLINE_WITHIN_S) == []
    assert (await refusal(store.revoke("tenant-b", uid="u", agent_id=agent))).sqlstate == "BM404"
    enqueue = status_command(store, "tenant-b", agent)
    assert (await refusal(enqueue)).sqlstate == "BM404"
    read = await store.read_command(
        "tenant-b", uid="u", agent_id=agent, command_id=uuid.UUID(command.command_id)
    )
    assert read is None
    [listed] = await store.list_agents("tenant-a", uid="u", online_within_s=ONLINE_WITHIN_S)
    assert listed.revoked_at is None


async def test_revoke_cancels_open_commands_once_and_refuses_new_ones(
    store: SqlAgentStore, pg_database: PgDatabase
) -> None:
    agent_id, credential = await registered(store, "tenant-a")
    await connect(pg_database, agent_id, credential)
    agent = uuid.UUID(agent_id)
    command = await status_command(store, "tenant-a", agent)
    revocation = await store.revoke("tenant-a", uid="admin-1", agent_id=agent)
    assert revocation.cancelled_commands == 1
    assert revocation.revoked_by == "admin-1"
    again = await store.revoke("tenant-a", uid="admin-2", agent_id=agent)
    assert again.cancelled_commands == 0
    assert again.revoked_by == "admin-1"
    cancelled = await store.read_command(
        "tenant-a", uid="u", agent_id=agent, command_id=uuid.UUID(command.command_id)
    )
    assert cancelled is not None
    assert cancelled.status == "cancelled"
    assert cancelled.error_code == "AGENT_REVOKED"
    enqueue = status_command(store, "tenant-a", agent)
    assert (await refusal(enqueue)).sqlstate == "BM410"


async def test_a_command_for_an_agent_never_connected_is_bm503_and_nothing_is_stored(
    store: SqlAgentStore,
) -> None:
    agent_id, _ = await registered(store, "tenant-a")
    enqueue = store.enqueue_command(
        "tenant-a",
        uid="u",
        agent_id=uuid.UUID(agent_id),
        kind="syncthing.status",
        params={},
        deadline_s=60,
        online_within_s=ONLINE_WITHIN_S,
    )
    offline = await refusal(enqueue)
    assert offline.sqlstate == "BM503"
    assert offline.detail == "last_seen_at=never"


@pytest.mark.parametrize(
    ("kind", "params", "message"),
    [
        ("rm.rf", {}, "unknown command kind"),
        ("proxmox.vm.clone", {}, "command kind not among the agent's capabilities"),
        ("syncthing.status", {"x": "a" * 17000}, "command params must be a JSON object of at most 16 KiB"),
    ],
)
async def test_commands_the_database_refuses_are_bm422(
    store: SqlAgentStore, pg_database: PgDatabase, kind: str, params: JsonObject, message: str
) -> None:
    agent_id, credential = await registered(store, "tenant-a")
    await connect(pg_database, agent_id, credential)
    enqueue = store.enqueue_command(
        "tenant-a",
        uid="u",
        agent_id=uuid.UUID(agent_id),
        kind=kind,
        params=params,
        deadline_s=60,
        online_within_s=ONLINE_WITHIN_S,
    )
    refused = await refusal(enqueue)
    assert refused.sqlstate == "BM422"
    assert refused.message == message


async def test_a_capability_off_the_allowlist_is_bm422_and_keeps_the_code(store: SqlAgentStore) -> None:
    code = new_secret()
    await store.create_pairing("tenant-a", uid="admin-1", code_hash=secret_digest(code))
    register = store.register(
        code_hash=secret_digest(code),
        credential_hash=secret_digest(new_secret()),
        name="a",
        version="1",
        capabilities=("rm.rf",),
    )
    assert (await refusal(register)).sqlstate == "BM422"
    agent = await store.register(
        code_hash=secret_digest(code),
        credential_hash=secret_digest(new_secret()),
        name="a",
        version="1",
        capabilities=(),
    )
    assert agent.capabilities == ()


async def test_an_unreachable_database_is_a_query_failure() -> None:
    sql = SqlStoragePolicyStore("postgresql://botmox_api:x@127.0.0.1:9/none", pool_timeout_s=0.3)
    try:
        with pytest.raises(StoreQueryFailed) as caught:
            await SqlAgentStore(sql).list_agents("tenant-a", uid="u", online_within_s=ONLINE_WITHIN_S)
        assert caught.value.message == "Failed to read agents from Supabase"
        assert "x@" not in str(caught.value.details)
    finally:
        await sql.aclose()


async def test_readiness_names_a_missing_agent_function(pg_database: PgDatabase) -> None:
    sql = SqlStoragePolicyStore(pg_database.api_dsn)
    try:
        store = SqlAgentStore(sql)
        assert (await store.check_ready()).ready is True
        admin = await asyncpg.connect(pg_database.admin_dsn)
        try:
            await admin.execute("drop function botmox.api_agent_connect(uuid, bytea, uuid, text, jsonb)")
        finally:
            await admin.close()
        ready = await store.check_ready()
        assert ready.ready is False
        assert ready.reason == "Migration not applied: missing botmox.api_agent_connect"
    finally:
        await sql.aclose()


async def test_with_supabase_db_url_the_supabase_check_includes_the_agents_migration(
    pg_database: PgDatabase,
) -> None:
    stores = stores_for(make_settings(supabase_db_url=pg_database.api_dsn))
    try:
        admin = await asyncpg.connect(pg_database.admin_dsn)
        try:
            await admin.execute(
                "revoke execute on function botmox.api_agent_commands_expire(integer) from botmox_api"
            )
        finally:
            await admin.close()
        ready = await stores.check_supabase()
        assert ready.ready is False
        assert ready.reason == "The API's database role may not use botmox.api_agent_commands_expire"
    finally:
        await stores.aclose()
