"""The agent tunnel's SQL store on the harness's real PostgreSQL, logged in as ``botmox_api``: the
agent's calls authenticated by its credential's digest, their refusals as ``AgentRefused``, the
sweep, the listening session, and readiness of the agents migration."""

from __future__ import annotations

import asyncio
import dataclasses
import uuid
from collections.abc import AsyncIterator

import asyncpg
import pytest

from botmox_api.agent_link import SUPERSEDED_MESSAGE, parse_notice
from botmox_api.agents import ONLINE_WITHIN_S, AgentRefused, new_secret, secret_digest
from botmox_api.model import StoreQueryFailed
from botmox_api.stores.agent_link_sql import SqlAgentLinkStore
from botmox_api.stores.agents_sql import SqlAgentStore
from botmox_api.stores.supabase_sql import SqlStoragePolicyStore
from harness.postgres.migrated import PgDatabase

CAPABILITIES = ("syncthing.status", "proxmox.vm.start")


@pytest.fixture
async def sql(pg_database: PgDatabase) -> AsyncIterator[SqlStoragePolicyStore]:
    store = SqlStoragePolicyStore(pg_database.api_dsn)
    yield store
    await store.aclose()


async def registered(sql: SqlStoragePolicyStore, tenant: str = "tenant-a") -> tuple[uuid.UUID, bytes]:
    agents = SqlAgentStore(sql)
    code = new_secret()
    await agents.create_pairing(tenant, uid="admin-1", code_hash=secret_digest(code))
    credential = secret_digest(new_secret())
    agent = await agents.register(
        code_hash=secret_digest(code),
        credential_hash=credential,
        name="pve-host",
        version="1.0.0",
        capabilities=CAPABILITIES,
    )
    return uuid.UUID(agent.agent_id), credential


async def queue(sql: SqlStoragePolicyStore, agent: uuid.UUID, deadline_s: int = 60) -> str:
    command = await SqlAgentStore(sql).enqueue_command(
        "tenant-a",
        uid="u",
        agent_id=agent,
        kind="syncthing.status",
        params={},
        deadline_s=deadline_s,
        online_within_s=ONLINE_WITHIN_S,
    )
    return command.command_id


async def test_a_command_from_connect_to_result(sql: SqlStoragePolicyStore) -> None:
    link = SqlAgentLinkStore(sql)
    agent, credential = await registered(sql)
    connection = uuid.uuid4()
    linked = await link.connect(
        agent, credential, connection_id=connection, version="1.0.1", capabilities=CAPABILITIES
    )
    assert (linked.agent_id, linked.tenant_id) == (str(agent), "tenant-a")
    command_id = await queue(sql, agent)
    [pending] = await link.pending_commands(agent, credential)
    assert (pending.command_id, pending.kind, pending.params) == (command_id, "syncthing.status", {})
    sent = await link.command_sent(agent, credential, uuid.UUID(command_id))
    assert (pending.status, pending.acknowledged) == ("queued", False)
    assert sent == dataclasses.replace(pending, status="sent")
    await link.heartbeat(agent, credential, connection_id=connection)
    await link.command_acked(agent, credential, uuid.UUID(command_id))
    await link.command_progress(agent, credential, uuid.UUID(command_id), {"percent": 10, "message": None})
    # Acknowledged without a result: still pending, re-sent as such (status kept, the ack not needed).
    [running] = await link.pending_commands(agent, credential)
    assert (running.command_id, running.status, running.acknowledged) == (command_id, "running", True)
    assert (await link.command_sent(agent, credential, uuid.UUID(command_id))).status == "running"
    stored = await link.command_result(
        agent, credential, uuid.UUID(command_id), ok=True, data={"n": 1}, error_code=None, error_message=None
    )
    assert (stored.kind, stored.status) == ("syncthing.status", "succeeded")
    assert stored.latency_s is not None
    with pytest.raises(AgentRefused) as again:
        await link.command_result(
            agent, credential, uuid.UUID(command_id), ok=True, data=None, error_code=None, error_message=None
        )
    assert again.value.sqlstate == "BM409"
    assert await link.disconnected(agent, connection_id=connection) is True
    assert await link.disconnected(agent, connection_id=connection) is False


async def test_a_wrong_credential_and_a_superseded_connection_are_bm403(sql: SqlStoragePolicyStore) -> None:
    link = SqlAgentLinkStore(sql)
    agent, credential = await registered(sql)
    with pytest.raises(AgentRefused) as refused:
        await link.connect(
            agent, secret_digest("wrong"), connection_id=uuid.uuid4(), version="1", capabilities=()
        )
    assert refused.value.sqlstate == "BM403"
    assert refused.value.message != SUPERSEDED_MESSAGE
    old, new = uuid.uuid4(), uuid.uuid4()
    await link.connect(agent, credential, connection_id=old, version="1", capabilities=())
    await link.connect(agent, credential, connection_id=new, version="1", capabilities=())
    with pytest.raises(AgentRefused) as superseded:
        await link.heartbeat(agent, credential, connection_id=old)
    assert (superseded.value.sqlstate, superseded.value.message) == ("BM403", SUPERSEDED_MESSAGE)
    # The old tunnel's late close leaves the new one's presence alone.
    assert await link.disconnected(agent, connection_id=old) is False


async def test_the_sweep_expires_commands_past_their_deadline_with_their_kind(
    sql: SqlStoragePolicyStore,
) -> None:
    link = SqlAgentLinkStore(sql)
    agent, credential = await registered(sql)
    await link.connect(agent, credential, connection_id=uuid.uuid4(), version="1", capabilities=CAPABILITIES)
    command_id = await queue(sql, agent, deadline_s=1)
    async with asyncio.timeout(10):
        while True:  # the deadline is the database's clock: ask until it has passed
            expired = await link.expire_commands(10)
            if expired:
                break
            await asyncio.sleep(0.2)
    [command] = expired
    assert (command.command_id, command.agent_id, command.tenant_id, command.kind) == (
        command_id,
        str(agent),
        "tenant-a",
        "syncthing.status",
    )
    assert await link.expire_commands(10) == []


async def test_the_listening_session_hears_commands_and_notices_its_loss(
    sql: SqlStoragePolicyStore, pg_database: PgDatabase
) -> None:
    link = SqlAgentLinkStore(sql)
    agent, credential = await registered(sql)
    await link.connect(agent, credential, connection_id=uuid.uuid4(), version="1", capabilities=CAPABILITIES)
    heard: asyncio.Queue[str] = asyncio.Queue()
    subscription = await link.listen(heard.put_nowait)
    try:
        command_id = await queue(sql, agent)
        notice = parse_notice(await asyncio.wait_for(heard.get(), 10))
        assert notice is not None
        assert (notice.event, notice.agent_id, notice.command_id) == ("command", str(agent), command_id)
        admin = await asyncpg.connect(pg_database.admin_dsn)
        try:
            await admin.execute(
                "select pg_terminate_backend(pid) from pg_stat_activity"
                " where datname = current_database() and application_name = 'botmox-api-listener'"
            )
        finally:
            await admin.close()
        await asyncio.wait_for(subscription.wait_lost(probe_every_s=0.1), 10)
        assert subscription.lost
    finally:
        await subscription.aclose()


async def test_an_unreachable_database_is_a_query_failure() -> None:
    sql = SqlStoragePolicyStore("postgresql://botmox_api:x@127.0.0.1:9/none", pool_timeout_s=0.3)
    link = SqlAgentLinkStore(sql)
    try:
        with pytest.raises(StoreQueryFailed):
            await link.pending_commands(uuid.uuid4(), secret_digest("x"))
        with pytest.raises(StoreQueryFailed):
            await link.listen(lambda _payload: None)
    finally:
        await sql.aclose()


def test_notices_this_version_does_not_know_are_ignored() -> None:
    assert parse_notice("not json") is None
    assert parse_notice('{"event": "renamed", "agent_id": "a"}') is None
    assert parse_notice('{"event": "command", "agent_id": 1}') is None
    assert parse_notice('["command"]') is None
    assert parse_notice('{"event": "revoked", "agent_id": "a", "command_id": null}') is not None
