"""What both Supabase transports share: the claims they present for a call, and a
``public.storage_policies`` row (from SQL or from PostgREST's JSON) as a ``StoragePolicy``.

Both call the same SQL functions and get the same columns back.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Mapping
from typing import Final

from botmox_api.model import IfMatch, InvalidStoredPolicy, StoragePolicy

POLICY_COLUMNS: Final = ("operational", "sync_enabled", "updated_at_ms", "updated_by", "version")


# The migration's BM412 error carries ``DETAIL: current_version=<n>`` or ``current_version=none``.
_CURRENT_VERSION_DETAIL: Final = re.compile(r"^current_version=(none|[0-9]+)$")


class UnknownVersion(Exception):
    """The conflict's detail did not say which version is stored."""


def current_version_from_detail(detail: object) -> int | None:
    """The stored version named by a BM412 error's detail; raises ``UnknownVersion`` when absent."""
    match = _CURRENT_VERSION_DETAIL.match(detail.strip()) if isinstance(detail, str) else None
    if match is None:
        raise UnknownVersion
    return None if match.group(1) == "none" else int(match.group(1))


def request_claims(tenant_id: str, uid: str | None) -> dict[str, object]:
    """The claims a call presents as ``request.jwt.claims``: the tenant where Supabase keeps it out
    of the user's reach (``app_metadata``; RLS and the functions read it there) and the principal as
    ``sub`` (the functions record it as ``updated_by``; a write without it is refused)."""
    claims: dict[str, object] = {"app_metadata": {"tenant_id": tenant_id}}
    if uid is not None:
        claims["sub"] = uid
    return claims


async def version_at_conflict(
    read: Callable[[str], Awaitable[StoragePolicy | None]], tenant_id: str, detail: object
) -> int | None:
    """The version a BM412 conflict saw: from the error's detail, else (an older migration) a fresh
    read, else ``None`` when even that fails. Shared by both Supabase transports."""
    try:
        return current_version_from_detail(detail)
    except UnknownVersion:
        pass
    try:
        current = await read(tenant_id)
    except Exception:
        return None
    return current.version if current is not None else None


class MalformedRow(ValueError):
    """A row that the SQL functions cannot have produced (wrong schema version, tampering)."""


def policy_from_row(row: Mapping[str, object]) -> StoragePolicy:
    operational = row.get("operational")
    sync_enabled = row.get("sync_enabled")
    updated_at = row.get("updated_at_ms")
    updated_by = row.get("updated_by")
    version = row.get("version")
    if operational not in ("local", "cloud"):
        raise MalformedRow("operational")
    if not isinstance(sync_enabled, bool):
        raise MalformedRow("sync_enabled")
    if not isinstance(updated_at, int) or isinstance(updated_at, bool):
        raise MalformedRow("updated_at_ms")
    if not isinstance(updated_by, str):
        raise MalformedRow("updated_by")
    if not isinstance(version, int) or isinstance(version, bool):
        raise MalformedRow("version")
    return StoragePolicy(
        operational="local" if operational == "local" else "cloud",
        sync_enabled=sync_enabled,
        updated_at=updated_at,
        updated_by=updated_by,
        version=version,
    )


def stored_policy_from_row(row: Mapping[str, object]) -> StoragePolicy | InvalidStoredPolicy:
    """A row as the backfill reads it: a row the table's constraints cannot hold (a schema that is
    not the migrations') is an ``InvalidStoredPolicy`` naming the column, never an exception."""
    try:
        return policy_from_row(row)
    except MalformedRow as error:
        version = row.get("version")
        known = version if isinstance(version, int) and not isinstance(version, bool) else None
        return InvalidStoredPolicy(f"unexpected value in column {error}", version=known)


def if_match_arguments(if_match: IfMatch | None) -> tuple[list[int] | None, bool]:
    """``(p_if_match, p_if_exists)`` for the SQL functions.

    ``*`` is "a row exists"; a list of versions is "the row's version is one of these" (an empty
    list matches nothing, as when every ETag of the header failed to parse); no header, no check.
    """
    if if_match is None:
        return None, False
    if if_match.any_version:
        return None, True
    return sorted(if_match.versions), False
