"""The agent tunnel's calls in Supabase's PostgreSQL: the agent's own functions of
``docs/contracts/agents-sql.md`` (connect, heartbeat, disconnected, pending, sent, ack, progress,
result), the sweep, and the listening session of ``NOTIFY botmox_agent_commands``.

Each call is ONE statement through the storage-policy SQL store's pool and turns
(``SqlStoragePolicyStore.fetch``), without claims: the agent id and its credential's digest are the
authentication. Refusals become ``AgentRefused`` (``agents_sql.agent_refusal``), anything else a
``StoreQueryFailed`` with the pool's reason. The listening session is a connection of its own
(``open_connection``): a LISTEN must outlive any statement, so it can never be a pooled one.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from collections.abc import Callable, Mapping
from typing import Any, Final

import asyncpg

from botmox_api.agent_link import NOTIFY_CHANNEL, ExpiredCommand, LinkCommand, LinkedAgent, StoredResult
from botmox_api.model import AGENTS_SUBJECT, Action, DataBackend, JsonObject, JsonValue, query_failed
from botmox_api.stores.agents_sql import agent_refusal
from botmox_api.stores.supabase_sql import SqlStoragePolicyStore

CONNECT_SQL: Final = "select agent_id, tenant_id from botmox.api_agent_connect($1, $2, $3, $4, $5::jsonb)"
HEARTBEAT_SQL: Final = "select botmox.api_agent_heartbeat($1, $2, $3) as last_seen_at"
DISCONNECTED_SQL: Final = "select botmox.api_agent_disconnected($1, $2) as current"
PENDING_SQL: Final = (
    "select id, kind, params, deadline, status from botmox.api_agent_commands_pending($1, $2)"
)
SENT_SQL: Final = "select id, kind, params, deadline, status from botmox.api_agent_command_sent($1, $2, $3)"
ACK_SQL: Final = "select id from botmox.api_agent_command_ack($1, $2, $3)"
PROGRESS_SQL: Final = "select id from botmox.api_agent_command_progress($1, $2, $3, $4::jsonb)"
RESULT_SQL: Final = (
    "select id, kind, status, created_at, finished_at"
    " from botmox.api_agent_command_result($1, $2, $3, $4, $5::jsonb, $6, $7)"
)
EXPIRE_SQL: Final = "select command_id, agent_id, tenant_id from botmox.api_agent_commands_expire($1)"
# The sweep's function returns ids only; the kind (a metrics label) is read as that tenant would.
EXPIRED_KIND_SQL: Final = "select kind from botmox.api_agent_command_read($1, $2, $3)"

_PROBE_TIMEOUT_S: Final = 5.0
_CLOSE_TIMEOUT_S: Final = 2.0


def _json_text(value: JsonValue) -> str:
    return json.dumps(value, separators=(",", ":"))


def _link_command(row: Mapping[str, Any]) -> LinkCommand:
    params = row["params"]
    decoded = json.loads(params) if isinstance(params, str) else params
    return LinkCommand(
        command_id=str(row["id"]),
        kind=str(row["kind"]),
        params=decoded if isinstance(decoded, dict) else {},
        deadline=row["deadline"],
        status=str(row["status"]),
    )


class SqlNoticeSubscription:
    """One LISTEN session; ``lost`` once the server or the network ended it."""

    def __init__(self, conn: asyncpg.Connection, on_notice: Callable[[str], None]) -> None:
        self._conn = conn
        self._on_notice = on_notice
        self._lost = asyncio.Event()
        conn.add_termination_listener(self._terminated)

    async def start(self) -> None:
        await self._conn.add_listener(NOTIFY_CHANNEL, self._notified)

    def _notified(self, _conn: object, _pid: int, _channel: str, payload: object) -> None:
        self._on_notice(str(payload))

    def _terminated(self, _conn: object) -> None:
        self._lost.set()

    @property
    def lost(self) -> bool:
        return self._lost.is_set() or self._conn.is_closed()

    async def wait_lost(self, probe_every_s: float) -> None:
        while not self.lost:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._lost.wait(), probe_every_s)
                return
            # Quiet for a while: a dropped TCP session only shows when something is sent.
            try:
                await self._conn.fetchval("select 1", timeout=_PROBE_TIMEOUT_S)
            except Exception:
                self._lost.set()
                self._conn.terminate()

    async def aclose(self) -> None:
        self._lost.set()
        if self._conn.is_closed():
            return
        try:
            await asyncio.wait_for(self._conn.close(), _CLOSE_TIMEOUT_S)
        except Exception:
            self._conn.terminate()


class SqlAgentLinkStore:
    backend: DataBackend = "supabase"

    def __init__(self, sql: SqlStoragePolicyStore) -> None:
        """``sql``: the Supabase SQL store whose pool this store shares (and does not close)."""
        self._sql = sql

    async def _call(
        self, action: Action, query: str, *args: object, tenant_id: str | None = None
    ) -> list[asyncpg.Record]:
        try:
            return await self._sql.fetch(tenant_id, None, query, *args)
        except Exception as error:
            refusal = agent_refusal(error) if isinstance(error, asyncpg.PostgresError) else None
            if refusal is not None:
                raise refusal from error
            raise query_failed("supabase", action, AGENTS_SUBJECT, self._sql.reason(error)) from error

    async def _one(self, action: Action, query: str, *args: object) -> asyncpg.Record:
        rows = await self._call(action, query, *args)
        if not rows:
            raise query_failed("supabase", action, AGENTS_SUBJECT, "The agent function returned no row")
        return rows[0]

    async def connect(
        self,
        agent_id: uuid.UUID,
        credential_hash: bytes,
        *,
        connection_id: uuid.UUID,
        version: str,
        capabilities: tuple[str, ...],
    ) -> LinkedAgent:
        row = await self._one(
            "write",
            CONNECT_SQL,
            agent_id,
            credential_hash,
            connection_id,
            version,
            _json_text(list(capabilities)),
        )
        return LinkedAgent(agent_id=str(row["agent_id"]), tenant_id=str(row["tenant_id"]))

    async def heartbeat(
        self, agent_id: uuid.UUID, credential_hash: bytes, *, connection_id: uuid.UUID
    ) -> None:
        await self._one("write", HEARTBEAT_SQL, agent_id, credential_hash, connection_id)

    async def disconnected(self, agent_id: uuid.UUID, *, connection_id: uuid.UUID) -> bool:
        row = await self._one("write", DISCONNECTED_SQL, agent_id, connection_id)
        return row["current"] is True

    async def pending_commands(self, agent_id: uuid.UUID, credential_hash: bytes) -> list[LinkCommand]:
        rows = await self._call("read", PENDING_SQL, agent_id, credential_hash)
        return [_link_command(row) for row in rows]

    async def command_sent(
        self, agent_id: uuid.UUID, credential_hash: bytes, command_id: uuid.UUID
    ) -> LinkCommand:
        return _link_command(await self._one("write", SENT_SQL, agent_id, credential_hash, command_id))

    async def command_acked(self, agent_id: uuid.UUID, credential_hash: bytes, command_id: uuid.UUID) -> None:
        await self._one("write", ACK_SQL, agent_id, credential_hash, command_id)

    async def command_progress(
        self, agent_id: uuid.UUID, credential_hash: bytes, command_id: uuid.UUID, progress: JsonObject
    ) -> None:
        await self._one("write", PROGRESS_SQL, agent_id, credential_hash, command_id, _json_text(progress))

    async def command_result(
        self,
        agent_id: uuid.UUID,
        credential_hash: bytes,
        command_id: uuid.UUID,
        *,
        ok: bool,
        data: JsonValue,
        error_code: str | None,
        error_message: str | None,
    ) -> StoredResult:
        row = await self._one(
            "write",
            RESULT_SQL,
            agent_id,
            credential_hash,
            command_id,
            ok,
            _json_text(data) if ok else None,
            error_code,
            error_message,
        )
        return StoredResult(
            command_id=str(row["id"]),
            kind=str(row["kind"]),
            status=str(row["status"]),
            created_at=row["created_at"],
            finished_at=row["finished_at"],
        )

    async def expire_commands(self, limit: int) -> list[ExpiredCommand]:
        rows = await self._call("write", EXPIRE_SQL, limit)
        expired = []
        for row in rows:
            tenant_id = str(row["tenant_id"])
            kinds = await self._call(
                "read", EXPIRED_KIND_SQL, row["agent_id"], row["command_id"], tenant_id=tenant_id
            )
            expired.append(
                ExpiredCommand(
                    command_id=str(row["command_id"]),
                    agent_id=str(row["agent_id"]),
                    tenant_id=tenant_id,
                    kind=str(kinds[0]["kind"]) if kinds else None,
                )
            )
        return expired

    async def listen(self, on_notice: Callable[[str], None]) -> SqlNoticeSubscription:
        try:
            conn = await self._sql.open_connection("listener")
        except Exception as error:
            raise query_failed("supabase", "read", AGENTS_SUBJECT, self._sql.reason(error)) from error
        subscription = SqlNoticeSubscription(conn, on_notice)
        try:
            await subscription.start()
        except Exception as error:
            await subscription.aclose()
            raise query_failed("supabase", "read", AGENTS_SUBJECT, self._sql.reason(error)) from error
        return subscription
