"""The customer agents as the API's tenant-side endpoints see them: the values the agents store
exchanges, the secrets the API hands out, and the refusals the database answers with.

Secrets: the API generates every pairing code and agent credential (``new_secret``: 256 random bits,
URL-safe) and returns it once; the database only ever sees ``secret_digest`` (SHA-256), as
``docs/contracts/agents-sql.md`` requires. A digest of a high-entropy secret needs no salt or slow hash.

Refusals: every SQLSTATE the agent functions raise on purpose (``BM401`` ... ``BM503``, ``42501``,
``22023``, ``23505``, ``23514``) reaches the routes as one ``AgentRefused`` carrying that SQLSTATE;
``errors.from_agent_refusal`` is the one place that turns it into an envelope error.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Final

from botmox_api.model import JsonObject, JsonValue

SECRET_BYTES: Final = 32
"""Random bytes of a pairing code or credential (256 bits; the contract asks for at least 128)."""

ONLINE_WITHIN_S: Final = 45
"""An agent is online when its tunnel was seen within this many seconds: the ``welcome`` frame's
``heartbeat_timeout_s`` of ``docs/agent-protocol.md`` (a 15 s beat, two missed beats of slack), after
which the tunnel closes anyway."""

DEFAULT_COMMAND_DEADLINE_S: Final = 300
MAX_COMMAND_DEADLINE_S: Final = 86_400
"""A command's deadline, in seconds from its enqueue (the database's bounds: 1 to 86400)."""

ADMIN_ROLE: Final = "admin"
"""Who may pair and revoke: a principal with this role (``app_metadata.roles`` of a Supabase token,
``roles`` of a Firebase one, or the internal infra token). Listing, commanding and reading need any
authenticated principal of the tenant."""


def new_secret() -> str:
    return secrets.token_urlsafe(SECRET_BYTES)


def secret_digest(secret: str) -> bytes:
    return hashlib.sha256(secret.encode()).digest()


@dataclass(frozen=True, slots=True)
class Pairing:
    pairing_id: str
    expires_at: datetime


@dataclass(frozen=True, slots=True)
class RegisteredAgent:
    agent_id: str
    tenant_id: str
    name: str
    version: str
    capabilities: tuple[str, ...]
    created_at: datetime

    def to_json(self, credential: str) -> JsonObject:
        return {
            "agent_id": self.agent_id,
            "tenant_id": self.tenant_id,
            "credential": credential,
            "name": self.name,
            "version": self.version,
            "capabilities": list(self.capabilities),
            "created_at": rfc3339(self.created_at),
        }


@dataclass(frozen=True, slots=True)
class AgentInfo:
    agent_id: str
    name: str
    version: str
    capabilities: tuple[str, ...]
    created_by: str
    created_at: datetime
    last_seen_at: datetime | None
    revoked_at: datetime | None
    online: bool

    def to_json(self) -> JsonObject:
        return {
            "id": self.agent_id,
            "name": self.name,
            "version": self.version,
            "capabilities": list(self.capabilities),
            "created_by": self.created_by,
            "created_at": rfc3339(self.created_at),
            "last_seen_at": rfc3339(self.last_seen_at),
            "revoked_at": rfc3339(self.revoked_at),
            "online": self.online,
        }


@dataclass(frozen=True, slots=True)
class Revocation:
    agent_id: str
    revoked_at: datetime
    revoked_by: str
    cancelled_commands: int

    def to_json(self) -> JsonObject:
        return {
            "agent_id": self.agent_id,
            "revoked_at": rfc3339(self.revoked_at),
            "revoked_by": self.revoked_by,
            "cancelled_commands": self.cancelled_commands,
        }


@dataclass(frozen=True, slots=True)
class AgentCommand:
    command_id: str
    agent_id: str
    kind: str
    params: JsonObject
    status: str
    deadline: datetime
    deliveries: int
    progress: JsonValue
    result_data: JsonValue
    error_code: str | None
    error_message: str | None
    created_by: str
    created_at: datetime
    finished_at: datetime | None

    def to_json(self) -> JsonObject:
        error: JsonValue = (
            None if self.error_code is None else {"code": self.error_code, "message": self.error_message}
        )
        return {
            "id": self.command_id,
            "agent_id": self.agent_id,
            "kind": self.kind,
            "params": self.params,
            "status": self.status,
            "deadline": rfc3339(self.deadline),
            "deliveries": self.deliveries,
            "progress": self.progress,
            "result": self.result_data if self.status == "succeeded" else None,
            "error": error,
            "created_by": self.created_by,
            "created_at": rfc3339(self.created_at),
            "finished_at": rfc3339(self.finished_at),
        }


def rfc3339(value: datetime | None) -> str | None:
    """A timestamp as the API writes them (UTC, ``Z``), ``None`` as null."""
    return None if value is None else value.isoformat().replace("+00:00", "Z")


class AgentRefused(Exception):
    """The database refused an agent call on purpose: ``sqlstate`` is one of the contract's, and
    ``message``/``detail`` are its words (never a secret: calls carry digests only)."""

    def __init__(self, sqlstate: str, message: str, detail: str | None = None) -> None:
        super().__init__(message)
        self.sqlstate = sqlstate
        self.message = message
        self.detail = detail


REFUSAL_SQLSTATES: Final = frozenset(
    {"BM401", "BM403", "BM404", "BM409", "BM410", "BM422", "BM503", "42501", "22023", "23505", "23514"}
)
"""The SQLSTATEs of ``docs/contracts/agents-sql.md`` that are answers, not failures. A ``42501`` is a
refusal only as the contract's "agent call without a tenant/caller"; a missing privilege is the
deployment's fault (502), told apart by ``AGENT_PERMISSION_MESSAGES``."""

AGENT_PERMISSION_MESSAGES: Final = frozenset({"agent call without a tenant", "agent call without a caller"})
