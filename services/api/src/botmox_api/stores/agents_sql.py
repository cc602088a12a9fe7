"""Agents, pairing codes and commands in Supabase's PostgreSQL: the tenant-side calls of the API.

Each method is ONE statement calling a ``botmox.api_agent*`` function (migration
``20261206160000_agents``, ``docs/contracts/agents-sql.md``), sent through the storage-policy SQL
store's pool, FIFO turns and failure reasons (``SqlStoragePolicyStore.fetch``): one pool of
``botmox_api`` connections per API worker, whatever the data. Tenant calls pass the principal's
claims first, so row-level security and the definer functions confine them to that tenant; the
registration passes none (the code's digest is the credential).

The database's deliberate refusals (``agents.REFUSAL_SQLSTATES``) become ``AgentRefused``; any other
failure is a ``StoreQueryFailed`` (502 ``SUPABASE_QUERY_FAILED``) with the pool's reason.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from datetime import datetime
from typing import Final

import asyncpg

from botmox_api.agents import (
    AGENT_PERMISSION_MESSAGES,
    REFUSAL_SQLSTATES,
    AgentCommand,
    AgentInfo,
    AgentRefused,
    Pairing,
    RegisteredAgent,
    Revocation,
)
from botmox_api.model import (
    AGENTS_SUBJECT,
    Action,
    DataBackend,
    JsonObject,
    JsonValue,
    Readiness,
    query_failed,
)
from botmox_api.stores.supabase_sql import CHECK_SCHEMA, SqlStoragePolicyStore

PAIRING_CREATE_SQL: Final = "select pairing_id, expires_at from botmox.api_agent_pairing_create($1, $2)"
REGISTER_SQL: Final = (
    "select agent_id, tenant_id, name, version, capabilities, created_at"
    " from botmox.api_agent_register($1, $2, $3, $4, $5::jsonb)"
)
LIST_SQL: Final = (
    "select agent_id, name, version, capabilities, created_by, created_at, last_seen_at, revoked_at, online"
    " from botmox.api_agents_list($1, $2)"
)
REVOKE_SQL: Final = (
    "select agent_id, revoked_at, revoked_by, cancelled_commands from botmox.api_agent_revoke($1, $2)"
)
# Both command statements select the same columns (``_command`` reads them).
ENQUEUE_SQL: Final = (
    "select id, agent_id, kind, params, status, deadline, deliveries, progress, result_data, error_code,"
    " error_message, created_by, created_at, finished_at"
    " from botmox.api_agent_command_enqueue($1, $2, $3, $4::jsonb, $5, $6)"
)
READ_COMMAND_SQL: Final = (
    "select id, agent_id, kind, params, status, deadline, deliveries, progress, result_data, error_code,"
    " error_message, created_by, created_at, finished_at"
    " from botmox.api_agent_command_read($1, $2, $3)"
)
CANCEL_SQL: Final = (
    "select id, agent_id, kind, params, status, deadline, deliveries, progress, result_data, error_code,"
    " error_message, created_by, created_at, finished_at"
    " from botmox.api_agent_command_cancel($1, $2, $3)"
)

# What "ready" adds for agents: the migration's sixteen functions exist and botmox_api may call them
# (run on the readiness connection, like the storage policy's ``CHECK_SCHEMA``).
AGENT_FUNCTIONS: Final = (
    "api_agent_pairing_create(text,bytea)",
    "api_agents_list(text,integer)",
    "api_agent_revoke(text,uuid)",
    "api_agent_command_enqueue(text,uuid,text,jsonb,integer,integer)",
    "api_agent_command_read(text,uuid,uuid)",
    "api_agent_command_cancel(text,uuid,uuid)",
    "api_agent_register(bytea,bytea,text,text,jsonb)",
    "api_agent_connect(uuid,bytea,uuid,text,jsonb)",
    "api_agent_heartbeat(uuid,bytea,uuid)",
    "api_agent_disconnected(uuid,uuid)",
    "api_agent_commands_pending(uuid,bytea)",
    "api_agent_command_sent(uuid,bytea,uuid)",
    "api_agent_command_ack(uuid,bytea,uuid)",
    "api_agent_command_progress(uuid,bytea,uuid,jsonb)",
    "api_agent_command_result(uuid,bytea,uuid,boolean,jsonb,text,text)",
    "api_agent_commands_expire(integer)",
)
CHECK_AGENT_SCHEMA: Final = (
    "select name, object is not null as present,"
    " coalesce(has_function_privilege(object, 'execute'), false) as allowed"
    " from (select position, 'botmox.' || split_part(signature, '(', 1) as name,"
    " to_regprocedure('botmox.' || signature)::oid as object"
    " from unnest($1::text[]) with ordinality as f(signature, position)) as functions"
    " order by position"
)
# The whole Supabase check in one statement, so that a probe stays one round trip: the storage
# policy's objects, then the agent functions, each part in its order.
CHECK_SCHEMA_WITH_AGENTS: Final = f"({CHECK_SCHEMA.strip()})\nunion all\n({CHECK_AGENT_SCHEMA})"


def _json(value: object) -> JsonValue:
    # asyncpg hands jsonb over as its text unless a codec is set; the pool sets none (the storage
    # policy has no jsonb), so it is decoded here.
    if value is None:
        return None
    decoded: JsonValue = json.loads(value) if isinstance(value, str) else value  # type: ignore[assignment]
    return decoded


def _kinds(value: object) -> tuple[str, ...]:
    decoded = _json(value)
    return tuple(str(kind) for kind in decoded) if isinstance(decoded, list) else ()


def _command(row: Mapping[str, object]) -> AgentCommand:
    params = _json(row["params"])
    return AgentCommand(
        command_id=str(row["id"]),
        agent_id=str(row["agent_id"]),
        kind=str(row["kind"]),
        params=params if isinstance(params, dict) else {},
        status=str(row["status"]),
        deadline=_at(row["deadline"]),
        deliveries=int(str(row["deliveries"])),
        progress=_json(row["progress"]),
        result_data=_json(row["result_data"]),
        error_code=_text(row["error_code"]),
        error_message=_text(row["error_message"]),
        created_by=str(row["created_by"]),
        created_at=_at(row["created_at"]),
        finished_at=_at_or_none(row["finished_at"]),
    )


def _at(value: object) -> datetime:
    if not isinstance(value, datetime):
        raise TypeError(f"expected a timestamp, got {type(value).__name__}")
    return value


def _at_or_none(value: object) -> datetime | None:
    return None if value is None else _at(value)


def _text(value: object) -> str | None:
    return None if value is None else str(value)


class SqlAgentStore:
    backend: DataBackend = "supabase"

    def __init__(self, sql: SqlStoragePolicyStore) -> None:
        """``sql``: the Supabase SQL store whose pool this store shares (and does not close)."""
        self._sql = sql

    async def _call(
        self, action: Action, tenant_id: str | None, uid: str | None, query: str, *args: object
    ) -> list[asyncpg.Record]:
        try:
            return await self._sql.fetch(tenant_id, uid, query, *args)
        except Exception as error:
            refusal = agent_refusal(error) if isinstance(error, asyncpg.PostgresError) else None
            if refusal is not None:
                raise refusal from error
            raise query_failed("supabase", action, AGENTS_SUBJECT, self._sql.reason(error)) from error

    async def _one(
        self, action: Action, tenant_id: str | None, uid: str | None, query: str, *args: object
    ) -> asyncpg.Record:
        rows = await self._call(action, tenant_id, uid, query, *args)
        if not rows:
            raise query_failed("supabase", action, AGENTS_SUBJECT, "The agent function returned no row")
        return rows[0]

    async def create_pairing(self, tenant_id: str, *, uid: str, code_hash: bytes) -> Pairing:
        row = await self._one("write", tenant_id, uid, PAIRING_CREATE_SQL, code_hash)
        return Pairing(pairing_id=str(row["pairing_id"]), expires_at=_at(row["expires_at"]))

    async def register(
        self,
        *,
        code_hash: bytes,
        credential_hash: bytes,
        name: str,
        version: str,
        capabilities: tuple[str, ...],
    ) -> RegisteredAgent:
        row = await self._one(
            "write",
            None,
            None,
            REGISTER_SQL,
            code_hash,
            credential_hash,
            name,
            version,
            json.dumps(capabilities),
        )
        return RegisteredAgent(
            agent_id=str(row["agent_id"]),
            tenant_id=str(row["tenant_id"]),
            name=str(row["name"]),
            version=str(row["version"]),
            capabilities=_kinds(row["capabilities"]),
            created_at=_at(row["created_at"]),
        )

    async def list_agents(self, tenant_id: str, *, uid: str, online_within_s: int) -> list[AgentInfo]:
        rows = await self._call("read", tenant_id, uid, LIST_SQL, online_within_s)
        return [
            AgentInfo(
                agent_id=str(row["agent_id"]),
                name=str(row["name"]),
                version=str(row["version"]),
                capabilities=_kinds(row["capabilities"]),
                created_by=str(row["created_by"]),
                created_at=_at(row["created_at"]),
                last_seen_at=_at_or_none(row["last_seen_at"]),
                revoked_at=_at_or_none(row["revoked_at"]),
                online=row["online"] is True,
            )
            for row in rows
        ]

    async def revoke(self, tenant_id: str, *, uid: str, agent_id: uuid.UUID) -> Revocation:
        row = await self._one("write", tenant_id, uid, REVOKE_SQL, agent_id)
        return Revocation(
            agent_id=str(row["agent_id"]),
            revoked_at=_at(row["revoked_at"]),
            revoked_by=str(row["revoked_by"]),
            cancelled_commands=int(str(row["cancelled_commands"])),
        )

    async def enqueue_command(
        self,
        tenant_id: str,
        *,
        uid: str,
        agent_id: uuid.UUID,
        kind: str,
        params: JsonObject,
        deadline_s: int,
        online_within_s: int,
    ) -> AgentCommand:
        row = await self._one(
            "write",
            tenant_id,
            uid,
            ENQUEUE_SQL,
            agent_id,
            kind,
            json.dumps(params, separators=(",", ":")),
            deadline_s,
            online_within_s,
        )
        return _command(row)

    async def read_command(
        self, tenant_id: str, *, uid: str, agent_id: uuid.UUID, command_id: uuid.UUID
    ) -> AgentCommand | None:
        rows = await self._call("read", tenant_id, uid, READ_COMMAND_SQL, agent_id, command_id)
        return _command(rows[0]) if rows else None

    async def cancel_command(
        self, tenant_id: str, *, uid: str, agent_id: uuid.UUID, command_id: uuid.UUID
    ) -> AgentCommand:
        row = await self._one("write", tenant_id, uid, CANCEL_SQL, agent_id, command_id)
        return _command(row)

    async def check_ready(self) -> Readiness:
        """The storage policy's check (a connection works, its migrations' objects exist and may be
        used) and, in the same statement, every agent function: a database without the agents
        migration says which function is missing."""
        return await self._sql.check_ready(CHECK_SCHEMA_WITH_AGENTS, list(AGENT_FUNCTIONS))

    async def aclose(self) -> None:
        """Nothing of its own to close: the pool is the storage-policy store's."""


def agent_refusal(error: asyncpg.PostgresError) -> AgentRefused | None:
    """The contract's refusal ``error`` stands for, else ``None`` (a failure); the agent link's
    store maps with it too."""
    sqlstate = error.sqlstate or ""
    if sqlstate not in REFUSAL_SQLSTATES:
        return None
    message = str(getattr(error, "message", "") or "")
    if sqlstate == "42501" and message not in AGENT_PERMISSION_MESSAGES:
        return None  # a missing privilege: the deployment's fault, not the caller's
    detail = getattr(error, "detail", None)
    return AgentRefused(sqlstate, message, detail if isinstance(detail, str) else None)
