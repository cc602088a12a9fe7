"""Stand-ins for a backend that is not configured: every data call raises ``StoreNotConfigured``
(503 ``*_CONFIG_ERROR``) naming the missing variables, and readiness says so too. They let the API
start, and keep serving every path the configured backend owns, when one backend is missing."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Final

from botmox_api.agents import AgentCommand, AgentInfo, Pairing, RegisteredAgent, Revocation
from botmox_api.model import (
    DataBackend,
    IfMatch,
    JsonObject,
    JsonValue,
    Readiness,
    StoragePolicy,
    StoragePolicyChanges,
    StoreNotConfigured,
    not_configured_message,
)


class _Unconfigured:
    def __init__(self, backend: DataBackend, missing: Sequence[str]) -> None:
        self.backend: DataBackend = backend
        self.missing = tuple(missing)

    def _error(self) -> StoreNotConfigured:
        return StoreNotConfigured(
            self.backend,
            not_configured_message(self.backend),
            details={"missing": list(self.missing)},
        )

    async def check_ready(self) -> Readiness:
        return Readiness(False, "Not configured: missing " + ", ".join(self.missing))

    async def aclose(self) -> None:
        return None


class UnconfiguredStoragePolicyStore(_Unconfigured):
    async def read(self, tenant_id: str, *, uid: str | None = None) -> StoragePolicy | None:
        raise self._error()

    async def replace(
        self,
        tenant_id: str,
        changes: StoragePolicyChanges,
        *,
        updated_by: str,
        if_match: IfMatch | None = None,
    ) -> StoragePolicy:
        raise self._error()

    async def merge(
        self,
        tenant_id: str,
        changes: StoragePolicyChanges,
        *,
        updated_by: str,
        if_match: IfMatch | None = None,
    ) -> StoragePolicy:
        raise self._error()


class UnconfiguredSettingsStore(_Unconfigured):
    async def read_tree(self, tenant_id: str) -> JsonObject:
        raise self._error()

    async def read(self, tenant_id: str, path: tuple[str, ...]) -> JsonValue:
        raise self._error()

    async def write(
        self, tenant_id: str, path: tuple[str, ...], body: JsonValue, *, updated_at: int
    ) -> JsonValue:
        raise self._error()


AGENTS_MISSING: Final = ("SUPABASE_DB_URL",)
"""Agents need Supabase over SQL: the REST settings alone do not serve them."""


class UnconfiguredAgentStore(_Unconfigured):
    async def create_pairing(self, tenant_id: str, *, uid: str, code_hash: bytes) -> Pairing:
        raise self._error()

    async def register(
        self,
        *,
        code_hash: bytes,
        credential_hash: bytes,
        name: str,
        version: str,
        capabilities: tuple[str, ...],
    ) -> RegisteredAgent:
        raise self._error()

    async def list_agents(self, tenant_id: str, *, uid: str, online_within_s: int) -> list[AgentInfo]:
        raise self._error()

    async def revoke(self, tenant_id: str, *, uid: str, agent_id: uuid.UUID) -> Revocation:
        raise self._error()

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
        raise self._error()

    async def read_command(
        self, tenant_id: str, *, uid: str, agent_id: uuid.UUID, command_id: uuid.UUID
    ) -> AgentCommand | None:
        raise self._error()

    async def cancel_command(
        self, tenant_id: str, *, uid: str, agent_id: uuid.UUID, command_id: uuid.UUID
    ) -> AgentCommand:
        raise self._error()
