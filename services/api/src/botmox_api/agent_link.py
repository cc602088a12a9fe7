"""The agent's side of the agents SQL as the tunnel sees it: the values ``AgentLinkStore`` exchanges
(``stores/protocols.py``) and the notifications every API worker listens to.

An agent's calls carry no claims: the agent id and the digest of the credential it presented
(``agents.secret_digest``) authenticate each one (``docs/contracts/agents-sql.md``, "The agent's
calls"); refusals are ``agents.AgentRefused`` like the tenant calls'.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Final, Literal, Protocol

from botmox_api.model import JsonObject

NOTIFY_CHANNEL: Final = "botmox_agent_commands"
"""The channel the agent functions notify at commit (ids only, never params)."""

SUPERSEDED_MESSAGE: Final = "agent connection superseded"
"""``BM403``'s message when another connection of the same agent took over (else the credential was
refused: revoked, since it was accepted when the connection opened)."""

NoticeEvent = Literal["command", "cancelled", "revoked"]


@dataclass(frozen=True, slots=True)
class LinkedAgent:
    """What ``api_agent_connect`` answers: whose agent the tunnel now holds."""

    agent_id: str
    tenant_id: str


@dataclass(frozen=True, slots=True)
class LinkCommand:
    """A command as the tunnel sends it (``api_agent_commands_pending``, ``api_agent_command_sent``)."""

    command_id: str
    kind: str
    params: JsonObject
    deadline: datetime
    # The row's status: `acked` or `running` when the agent acknowledged it on an earlier connection
    # (a re-delivery after a reconnect: its ack on this connection is not stored again).
    status: str = "sent"

    @property
    def acknowledged(self) -> bool:
        return self.status in ("acked", "running")


@dataclass(frozen=True, slots=True)
class StoredResult:
    """A result as stored: enough for the metrics (kind, outcome, enqueue-to-result latency)."""

    command_id: str
    kind: str
    status: str
    created_at: datetime
    finished_at: datetime | None

    @property
    def latency_s(self) -> float | None:
        if self.finished_at is None:
            return None
        return max(0.0, (self.finished_at - self.created_at).total_seconds())


@dataclass(frozen=True, slots=True)
class ExpiredCommand:
    command_id: str
    agent_id: str
    tenant_id: str
    kind: str | None


@dataclass(frozen=True, slots=True)
class Notice:
    """One ``NOTIFY botmox_agent_commands`` payload."""

    event: NoticeEvent
    agent_id: str
    command_id: str | None


def parse_notice(payload: str) -> Notice | None:
    """The notification, or ``None`` for a payload this version does not know (ignored, not fatal)."""
    try:
        value = json.loads(payload)
    except ValueError:
        return None
    if not isinstance(value, dict):
        return None
    event, agent_id, command_id = value.get("event"), value.get("agent_id"), value.get("command_id")
    if event not in ("command", "cancelled", "revoked") or not isinstance(agent_id, str):
        return None
    if command_id is not None and not isinstance(command_id, str):
        return None
    return Notice(event, agent_id, command_id)


def agent_uuid(text: str) -> uuid.UUID | None:
    """An agent id as the database takes it, or ``None`` when the text is not a UUID."""
    try:
        return uuid.UUID(text)
    except ValueError:
        return None


class NoticeSubscription(Protocol):
    """A dedicated database session listening to ``NOTIFY_CHANNEL``."""

    @property
    def lost(self) -> bool:
        """The session ended (the server restarted, the network dropped it)."""
        ...

    async def wait_lost(self, probe_every_s: float) -> None:
        """Return once the session is lost, probing it every ``probe_every_s`` (a silent TCP drop
        shows only when something is sent)."""
        ...

    async def aclose(self) -> None: ...
