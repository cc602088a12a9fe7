"""The domain: the values the routes, the validation and the stores all speak of.

JSON values, the storage policy and its changes, ``If-Match``, readiness, the store failures and
their messages (``docs/contracts/api-v1.md``), and what RTDB can hold. Generic settings live in RTDB
in both modes, so its limits bound every settings write whatever ``DATA_BACKEND`` says: the path
rules, the body checks, the RTDB paths and the OpenAPI document all import them from here.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Final, Literal, TypeAlias

JsonValue: TypeAlias = "bool | int | float | str | list[JsonValue] | dict[str, JsonValue] | None"
JsonObject: TypeAlias = "dict[str, JsonValue]"
SettingsPath = tuple[str, ...]
"""The segments of a settings path below ``settings``; ``()`` is the whole tree."""

DataBackend = Literal["rtdb", "supabase"]
"""``DATA_BACKEND``, and the backend a store (or a failure) belongs to."""
BACKEND_TITLES: Final[dict[DataBackend, str]] = {"supabase": "Supabase", "rtdb": "RTDB"}

TENANT_ID_PATTERN: Final = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")

# RTDB holds at most 32 levels below its root, and a tenant's settings start 3 levels down
# (tenants/{tenant_id}/settings): a settings path plus the depth of its body gets the rest.
RTDB_MAX_LEVELS: Final = 32
SETTINGS_ROOT_LEVELS: Final = 3
MAX_LEVELS_BELOW_SETTINGS: Final = RTDB_MAX_LEVELS - SETTINGS_ROOT_LEVELS
MAX_KEY_BYTES: Final = 768
# RTDB keeps every number as a double, exact for integers up to 2^53 only: a larger integer would be
# stored rounded, so it is refused instead.
MAX_SAFE_INTEGER: Final = 2**53
# What an RTDB key may not hold, as the body of a regular-expression character class (the OpenAPI
# patterns are built from it too). ``/`` separates keys in a path.
RTDB_KEY_FORBIDDEN: Final = r".#$\[\]/\x00-\x1f\x7f"
_FORBIDDEN_IN_KEY: Final = re.compile(f"[{RTDB_KEY_FORBIDDEN}]")


def is_rtdb_key(key: str) -> bool:
    """An RTDB key: non-empty, no ``. # $ [ ] /`` and no control characters (``.``/``..`` included)."""
    return bool(key) and _FORBIDDEN_IN_KEY.search(key) is None


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


# The fields of a stored policy as the contract names them (``version`` is the ETag's): the
# comparison of two backends (the cutover tool's ``plan``/``verify``, shadow reads) is by these.
POLICY_FIELDS: Final = ("operational", "sync.enabled", "updated_at", "updated_by", "version")
STORED_ON_ONE_SIDE: Final = "document"
"""What ``policy_differences`` names when one side has a policy and the other has none."""


def policy_differences(left: StoragePolicy | None, right: StoragePolicy | None) -> tuple[str, ...]:
    """The ``POLICY_FIELDS`` in which two stored policies differ; ``(STORED_ON_ONE_SIDE,)`` when only
    one of them exists; ``()`` when they match (nothing stored on either side matches too)."""
    if left is None or right is None:
        return () if left is right else (STORED_ON_ONE_SIDE,)
    pairs = (
        (left.operational, right.operational),
        (left.sync_enabled, right.sync_enabled),
        (left.updated_at, right.updated_at),
        (left.updated_by, right.updated_by),
        (left.version, right.version),
    )
    return tuple(name for name, (a, b) in zip(POLICY_FIELDS, pairs, strict=True) if a != b)


@dataclass(frozen=True, slots=True)
class InvalidStoredPolicy:
    """A stored document the API would read leniently (defaults for what is wrong) but a copy must
    not carry over: a backfill reports it with ``reason`` and skips the tenant. ``version`` is the
    version the API reads from it (so a forced overwrite can still be conditional)."""

    reason: str
    version: int | None = None


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


Action = Literal["read", "write"]
SETTINGS_SUBJECT: Final = "settings"
STORAGE_POLICY_SUBJECT: Final = "storage policy"
AGENTS_SUBJECT: Final = "agents"


def failure_message(action: Action, subject: str, backend: DataBackend) -> str:
    """The message of a ``*_QUERY_FAILED`` error: "Failed to read storage policy from Supabase"."""
    preposition = "from" if action == "read" else "to"
    return f"Failed to {action} {subject} {preposition} {BACKEND_TITLES[backend]}"


def not_configured_message(backend: DataBackend) -> str:
    return f"{BACKEND_TITLES[backend]} is not configured"


class StoreError(Exception):
    """Base of every store failure; the API maps each subclass to one envelope error."""

    def __init__(self, backend: DataBackend, message: str, *, details: Mapping[str, object] | None = None):
        super().__init__(message)
        self.backend: DataBackend = backend
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

    def __init__(self, backend: DataBackend, current_version: int | None):
        super().__init__(
            backend,
            "If-Match does not match the current version",
            details={"current_version": current_version},
        )
        self.current_version = current_version


# Reasons are for operators; a runaway server message must not bloat a response.
_MAX_REASON_CHARS: Final = 300


def query_failed(backend: DataBackend, action: Action, subject: str, reason: str) -> StoreQueryFailed:
    """The failure a store raises when its backend failed. Reasons never carry DSNs, keys or
    tokens: each store builds its reason from an error class, an SQLSTATE or a server's error text."""
    reason = " ".join(reason.split())
    if len(reason) > _MAX_REASON_CHARS:
        reason = reason[: _MAX_REASON_CHARS - 1] + "…"
    return StoreQueryFailed(
        backend, failure_message(action, subject, backend), details={"reason": reason or "unknown error"}
    )
