"""Validation of a ``storage_policy`` write body, and ``If-Match`` parsing.

Writable fields: ``operational`` (``local`` | ``cloud``), ``sync.enabled`` (boolean) and ``secrets``
(only ``local-only``). ``updated_at``, ``updated_by`` and unknown keys are ignored. Messages follow
zod, which the legacy server used, so the frontend shows them unchanged.
"""

from __future__ import annotations

from typing import Final

from botmox_api.model import SECRETS_LOCAL_ONLY, IfMatch, JsonValue, Operational, StoragePolicyChanges
from botmox_api.validation import Issues, form_error, received_type

WRITABLE_FIELDS: Final = ("operational", "sync", "secrets")
_OPERATIONAL: Final[tuple[Operational, ...]] = ("local", "cloud")
_OPERATIONAL_EXPECTED: Final = " | ".join(f"'{value}'" for value in _OPERATIONAL)


def validate_storage_policy_body(body: JsonValue) -> StoragePolicyChanges:
    """The validated changes; raises ``BadRequest`` with zod-like details."""
    if not isinstance(body, dict):
        raise form_error(f"Expected object, received {received_type(body)}")
    if not any(name in body for name in WRITABLE_FIELDS):
        raise form_error("Storage policy payload must not be empty")
    issues = Issues()
    operational: Operational | None = None
    sync_enabled: bool | None = None
    if "operational" in body:
        value = body["operational"]
        if value == "local":
            operational = "local"
        elif value == "cloud":
            operational = "cloud"
        elif isinstance(value, str):
            issues.add(
                ("operational",), f"Invalid enum value. Expected {_OPERATIONAL_EXPECTED}, received '{value}'"
            )
        else:
            issues.add(("operational",), f"Expected {_OPERATIONAL_EXPECTED}, received {received_type(value)}")
    if "sync" in body:
        sync = body["sync"]
        if not isinstance(sync, dict):
            issues.add(("sync",), f"Expected object, received {received_type(sync)}")
        elif "enabled" not in sync:
            issues.add(("sync", "enabled"), "Required")
        elif isinstance(sync["enabled"], bool):
            sync_enabled = sync["enabled"]
        else:
            issues.add(("sync", "enabled"), f"Expected boolean, received {received_type(sync['enabled'])}")
    if "secrets" in body and body["secrets"] != SECRETS_LOCAL_ONLY:
        issues.add(("secrets",), f'Invalid literal value, expected "{SECRETS_LOCAL_ONLY}"')
    issues.raise_if_any()
    return StoragePolicyChanges(operational=operational, sync_enabled=sync_enabled)


# Versions are SQL bigints (and far below that in RTDB): a larger number names no stored version,
# and the SQL store must never be asked for one it cannot hold.
MAX_VERSION: Final = 2**63 - 1


def etag_of(version: int) -> str:
    return f'"{version}"'


def _version_named_by(tag: str) -> int | None:
    """The version whose ETag is exactly ``tag``, character for character (``"01"`` names none)."""
    inner = tag[1:-1]
    if not (inner.isascii() and inner.isdigit()) or len(inner) > len(str(MAX_VERSION)):
        return None
    version = int(inner)
    if version > MAX_VERSION or etag_of(version) != tag:
        return None
    return version


def parse_if_match(values: list[str]) -> IfMatch | None:
    """``None`` without the header. ``*`` matches any stored version; strong tags only (``W/`` never
    matches); a tag that is not exactly the ETag of a version a store can hold is kept out, so it never
    matches, and an empty header names no version at all, so it matches nothing."""
    if not values:
        return None
    versions: set[int] = set()
    any_version = False
    for value in values:
        for raw in value.split(","):
            tag = raw.strip()
            if tag == "*":
                any_version = True
            elif (version := _version_named_by(tag)) is not None:
                versions.add(version)
    return IfMatch(versions=frozenset(versions), any_version=any_version)
