"""The store seam: one ``Protocol`` per kind of data, one implementation per backend.

Routes never talk to firebase-admin, psycopg or supabase-py directly; they receive a store that
satisfies one of these protocols (the values they exchange are in ``botmox_api.model``). Tests
substitute a store the way httpx tests substitute a ``MockTransport``. A future backfill
(RTDB -> Supabase) reads with one implementation and writes with another through exactly these methods.

``StoreSet`` is what the application holds: the stores the active mode routes each path to
(``factory.stores_for`` builds it from the configuration; tests build one of memory stores).
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from botmox_api.agent_link import ExpiredCommand, LinkCommand, LinkedAgent, NoticeSubscription, StoredResult
from botmox_api.agents import AgentCommand, AgentInfo, Pairing, RegisteredAgent, Revocation
from botmox_api.model import (
    DataBackend,
    IfMatch,
    InvalidStoredPolicy,
    JsonObject,
    JsonValue,
    Readiness,
    StoragePolicy,
    StoragePolicyChanges,
)
from botmox_api.stores.unconfigured import AGENTS_MISSING, UnconfiguredAgentStore


class StoragePolicyStore(Protocol):
    """Where a tenant's ``storage_policy`` document lives.

    Every call acts for one principal: ``tenant_id`` and the principal's uid (``uid`` of a read,
    ``updated_by`` of a write). The Supabase stores present both to the database as verified JWT
    claims (``app_metadata.tenant_id`` and ``sub``): row-level security confines the call to that
    tenant and the database records ``sub`` as the author, whatever the store passes as arguments.
    RTDB stores the uid as ``updated_by`` itself. A read with ``uid=None`` is the API's own (a probe).
    """

    backend: DataBackend

    async def read(self, tenant_id: str, *, uid: str | None = None) -> StoragePolicy | None: ...

    async def replace(
        self,
        tenant_id: str,
        changes: StoragePolicyChanges,
        *,
        updated_by: str,
        if_match: IfMatch | None = None,
    ) -> StoragePolicy: ...

    async def merge(
        self,
        tenant_id: str,
        changes: StoragePolicyChanges,
        *,
        updated_by: str,
        if_match: IfMatch | None = None,
    ) -> StoragePolicy: ...

    async def check_ready(self) -> Readiness: ...

    async def aclose(self) -> None: ...


class StoragePolicyBackfillStore(Protocol):
    """Every tenant's storage policy in one backend, as an administrator sees it: the seam of the
    cutover tool (``python -m botmox_api.cutover``), which reads with one backend's store and writes
    with the other's. No principal: the store is built from administrator credentials (an admin
    ``SUPABASE_DB_URL``; RTDB's service account), never from the API's.

    Implemented by the same classes as ``StoragePolicyStore`` (one implementation per backend), so a
    copy stores exactly what the API would read back.
    """

    backend: DataBackend

    def tenant_batches(self, batch_size: int, *, after: str | None = None) -> AsyncIterator[list[str]]:
        """The ids of the tenants that may have a policy stored, ascending, ``batch_size`` at a time,
        starting after ``after``. RTDB lists every key below ``tenants`` (a key that is no valid
        tenant id included: ``read_stored`` reports it)."""
        ...

    async def read_stored(self, tenant_ids: Sequence[str]) -> dict[str, StoragePolicy | InvalidStoredPolicy]:
        """The stored policy of each tenant that has one (tenants with nothing stored are left out).
        Strict where the API is lenient: a document with a field of the wrong type or value, an
        unknown key, or under an invalid tenant id is an ``InvalidStoredPolicy`` naming what is wrong."""
        ...

    async def write_stored(
        self, tenant_id: str, policy: StoragePolicy, *, expected_version: int | None
    ) -> None:
        """Store ``policy`` exactly (``updated_at``, ``updated_by`` and ``version`` included) when the
        tenant's stored version is ``expected_version`` (``None``: nothing stored); otherwise raise
        ``VersionConflict`` and change nothing. All or nothing."""
        ...

    async def aclose(self) -> None: ...


class LegacyStoragePolicySource(Protocol):
    """The pre-tenant global ``settings/storage_policy`` node of RTDB (the legacy server's), which a
    backfill adopts into the default tenant only on request (``--adopt-legacy``)."""

    async def read_legacy(self) -> StoragePolicy | InvalidStoredPolicy | None: ...

    async def remove_legacy(self, *, expected_version: int) -> None:
        """Delete the legacy node if its version is still ``expected_version``; ``VersionConflict``
        (nothing deleted) otherwise."""
        ...


class SettingsStore(Protocol):
    """Generic tenant settings: a JSON tree stored the RTDB way (nulls removed, empties vanish)."""

    backend: DataBackend

    async def read_tree(self, tenant_id: str) -> JsonObject: ...

    async def read(self, tenant_id: str, path: tuple[str, ...]) -> JsonValue: ...

    async def write(
        self, tenant_id: str, path: tuple[str, ...], body: JsonValue, *, updated_at: int
    ) -> JsonValue:
        """Merge an object body one level deep into the node (a ``null`` child deletes it) and
        set ``updated_at``; replace the node with any other body. Returns the node afterwards.
        Concurrent writes of different children of one node lose no update."""
        ...

    async def check_ready(self) -> Readiness: ...

    async def aclose(self) -> None: ...


class AgentStore(Protocol):
    """The customer agents of ``docs/contracts/agents-sql.md``, as the API's HTTP endpoints use them:
    always Supabase (SQL), whatever ``DATA_BACKEND`` says.

    Tenant calls act for one principal (``tenant_id`` and ``uid``, presented as claims as for the
    storage policy); ``register`` acts for whoever holds a pairing code. Secrets never reach a store:
    only their SHA-256 (``agents.secret_digest``). The database's deliberate refusals are raised as
    ``agents.AgentRefused`` (its SQLSTATE), other failures as ``StoreError``s.
    """

    backend: DataBackend

    async def create_pairing(self, tenant_id: str, *, uid: str, code_hash: bytes) -> Pairing: ...

    async def register(
        self,
        *,
        code_hash: bytes,
        credential_hash: bytes,
        name: str,
        version: str,
        capabilities: tuple[str, ...],
    ) -> RegisteredAgent: ...

    async def list_agents(self, tenant_id: str, *, uid: str, online_within_s: int) -> list[AgentInfo]: ...

    async def revoke(self, tenant_id: str, *, uid: str, agent_id: uuid.UUID) -> Revocation: ...

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
    ) -> AgentCommand: ...

    async def read_command(
        self, tenant_id: str, *, uid: str, agent_id: uuid.UUID, command_id: uuid.UUID
    ) -> AgentCommand | None: ...

    async def cancel_command(
        self, tenant_id: str, *, uid: str, agent_id: uuid.UUID, command_id: uuid.UUID
    ) -> AgentCommand: ...

    async def check_ready(self) -> Readiness:
        """Whether the agents migration's functions exist and the API's role may call them."""
        ...

    async def aclose(self) -> None: ...


class AgentLinkStore(Protocol):
    """The agent's own calls of ``docs/contracts/agents-sql.md``, as the tunnel drives them: each one
    authenticated by the agent id and the digest of the credential the tunnel was opened with (no
    claims), refused as ``agents.AgentRefused`` with the contract's SQLSTATE, other failures as
    ``StoreError``s. ``connection_id`` is the tunnel's own (never sent to the agent)."""

    async def connect(
        self,
        agent_id: uuid.UUID,
        credential_hash: bytes,
        *,
        connection_id: uuid.UUID,
        version: str,
        capabilities: tuple[str, ...],
    ) -> LinkedAgent: ...

    async def heartbeat(
        self, agent_id: uuid.UUID, credential_hash: bytes, *, connection_id: uuid.UUID
    ) -> None:
        """Last seen now; ``BM403`` when revoked or when another connection took over."""
        ...

    async def disconnected(self, agent_id: uuid.UUID, *, connection_id: uuid.UUID) -> bool:
        """Clear the presence if ``connection_id`` is still the agent's; no credential needed."""
        ...

    async def pending_commands(self, agent_id: uuid.UUID, credential_hash: bytes) -> list[LinkCommand]:
        """Queued and sent commands within their deadline, oldest first."""
        ...

    async def command_sent(
        self, agent_id: uuid.UUID, credential_hash: bytes, command_id: uuid.UUID
    ) -> LinkCommand: ...

    async def command_acked(
        self, agent_id: uuid.UUID, credential_hash: bytes, command_id: uuid.UUID
    ) -> None: ...

    async def command_progress(
        self, agent_id: uuid.UUID, credential_hash: bytes, command_id: uuid.UUID, progress: JsonObject
    ) -> None: ...

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
    ) -> StoredResult: ...

    async def expire_commands(self, limit: int) -> list[ExpiredCommand]:
        """Mark at most ``limit`` open commands past their deadline expired (any tenant's)."""
        ...

    async def listen(self, on_notice: Callable[[str], None]) -> NoticeSubscription:
        """A session of its own (not pooled) listening to ``agent_link.NOTIFY_CHANNEL``; each payload
        is handed to ``on_notice`` on the event loop."""
        ...


def _agents_not_configured() -> AgentStore:
    return UnconfiguredAgentStore("supabase", AGENTS_MISSING)


@dataclass(frozen=True, slots=True)
class StoreSet:
    settings: SettingsStore
    """Generic settings paths; always RTDB."""
    storage_policy: StoragePolicyStore
    """The ``storage_policy`` path, in the store the active mode routes it to."""
    supabase: StoragePolicyStore
    """The Supabase storage-policy store (unconfigured stand-in when not configured)."""
    supabase_configured: bool
    rtdb_configured: bool
    shadow: StoragePolicyStore | None = None
    """With ``STORAGE_POLICY_SHADOW=on``: the other backend's storage-policy store, which shadow
    reads compare ``storage_policy``'s answers with (``shadow_reads.py``); ``None`` otherwise."""
    agents: AgentStore = field(default_factory=_agents_not_configured)
    """Agents and their commands: Supabase over SQL, sharing the ``supabase`` store's pool; a
    stand-in answering 503 ``SUPABASE_CONFIG_ERROR`` without ``SUPABASE_DB_URL``."""
    agent_link: AgentLinkStore | None = None
    """The agent tunnel's calls on that same pool; ``None`` without ``SUPABASE_DB_URL`` (the tunnel
    then refuses every connection)."""

    async def check_supabase(self) -> Readiness:
        if self.agent_link is None:
            return await self.supabase.check_ready()
        # With SUPABASE_DB_URL the agents live there too: their migration is part of "ready" (the
        # agents store checks both in one statement, on the same readiness connection).
        return await self.agents.check_ready()

    async def check_rtdb(self) -> Readiness:
        return await self.settings.check_ready()

    async def aclose(self) -> None:
        stores: list[SettingsStore | StoragePolicyStore] = [self.settings]
        # The same store may fill several roles (rtdb mode's shadow is the Supabase store): once each.
        for policy_store in (self.storage_policy, self.supabase, self.shadow):
            if policy_store is not None and all(policy_store is not seen for seen in stores):
                stores.append(policy_store)
        for store in stores:
            await store.aclose()
        await self.agents.aclose()
