"""The store seam: one ``Protocol`` per kind of data, one implementation per backend.

Routes never talk to firebase-admin, psycopg or supabase-py directly; they receive a store that
satisfies one of these protocols. Tests substitute a store the way httpx tests substitute a
``MockTransport``. A future backfill (RTDB -> Supabase) reads with one implementation and writes
with another through exactly these methods.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal, Protocol, TypeAlias

JsonValue: TypeAlias = "bool | int | float | str | list[JsonValue] | dict[str, JsonValue] | None"
JsonObject: TypeAlias = "dict[str, JsonValue]"

Backend = Literal["supabase", "rtdb"]
Operational = Literal["local", "cloud"]

DEFAULT_OPERATIONAL: Operational = "cloud"
DEFAULT_SYNC_ENABLED = False
SECRETS_LOCAL_ONLY: Literal["local-only"] = "local-only"


@dataclass(frozen=True, slots=True)
class StoragePolicy:
    """One tenant's storage policy as stored, with its version (served as the ETag)."""

    operational: Operational
    sync_enabled: bool
    updated_at: int
    updated_by: str
    version: int
    secrets: Literal["local-only"] = SECRETS_LOCAL_ONLY

    def to_document(self) -> JsonObject:
        """The wire document of ``docs/contracts/api-v1.md``; identical for both backends."""
        return {
            "secrets": self.secrets,
            "operational": self.operational,
            "sync": {"enabled": self.sync_enabled},
            "updated_at": self.updated_at,
            "updated_by": self.updated_by,
        }


@dataclass(frozen=True, slots=True)
class StoragePolicyChanges:
    """Validated writable fields of a PUT or PATCH; ``None`` means "not given".

    For a replace, a field not given takes its default; for a merge, it keeps the stored value
    (or the default when nothing is stored).
    """

    operational: Operational | None = None
    sync_enabled: bool | None = None


@dataclass(frozen=True, slots=True)
class IfMatch:
    """A parsed ``If-Match`` header.

    ``any_version`` is ``*``. ``versions`` holds the versions whose ETag is exactly one of the
    header's strong tags; any other tag is dropped, so it can never match (``IfMatch()``, from an
    empty header, matches nothing). Nothing matches a tenant with nothing stored, ``*`` included.
    """

    versions: frozenset[int] = field(default_factory=frozenset)
    any_version: bool = False

    def matches(self, current: int | None) -> bool:
        if current is None:
            return False
        return self.any_version or current in self.versions


@dataclass(frozen=True, slots=True)
class Readiness:
    ready: bool
    reason: str | None = None


class StoragePolicyStore(Protocol):
    """Where a tenant's ``storage_policy`` document lives.

    Every call acts for one principal: ``tenant_id`` and the principal's uid (``uid`` of a read,
    ``updated_by`` of a write). The Supabase stores present both to the database as verified JWT
    claims (``app_metadata.tenant_id`` and ``sub``): row-level security confines the call to that
    tenant and the database records ``sub`` as the author, whatever the store passes as arguments.
    RTDB stores the uid as ``updated_by`` itself. A read with ``uid=None`` is the API's own (a probe).
    """

    backend: Backend

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


class SettingsStore(Protocol):
    """Generic tenant settings: a JSON tree stored the RTDB way (nulls removed, empties vanish)."""

    backend: Backend

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


class StoreError(Exception):
    """Base of every store failure; the API maps each subclass to one envelope error."""

    def __init__(self, backend: Backend, message: str, *, details: Mapping[str, object] | None = None):
        super().__init__(message)
        self.backend: Backend = backend
        self.message = message
        self.details: dict[str, object] = dict(details or {})


class StoreNotConfigured(StoreError):
    """The backend a path needs is not configured (503 ``*_CONFIG_ERROR``); ``details["missing"]``
    names the variables."""


class StoreQueryFailed(StoreError):
    """The store answered with an error or could not be reached (502 ``*_QUERY_FAILED``).
    ``details["reason"]`` carries the store's own reason; nothing was half-written."""


class VersionConflict(StoreError):
    """``If-Match`` did not match the stored version (412); nothing changed."""

    def __init__(self, backend: Backend, current_version: int | None):
        super().__init__(
            backend,
            "If-Match does not match the current version",
            details={"current_version": current_version},
        )
        self.current_version = current_version
