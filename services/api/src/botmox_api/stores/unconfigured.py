"""Stand-ins for a backend that is not configured: every data call raises ``StoreNotConfigured``
(503 ``*_CONFIG_ERROR``) naming the missing variables, and readiness says so too. They let the API
start, and keep serving every path the configured backend owns, when one backend is missing."""

from __future__ import annotations

from collections.abc import Sequence

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
