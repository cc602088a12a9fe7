"""RTDB as the stores reach it: where the database is, and where a tenant's data is in it. The
connection itself is ``_rtdb_rest``.

Where: production (``https://…``) or an emulator, resolved from the configuration, never from the
process environment (firebase-admin reads ``FIREBASE_DATABASE_EMULATOR_HOST`` from it, global
state): the target's ``database_url`` says it, ``http://HOST:PORT?ns=NAMESPACE`` being an emulator,
so two stores in one process can talk to two different emulators (the tests rely on that).

Tenant-scoped paths: ``tenants/{tenant_id}/settings/{path}``. The API validates tenant ids and
settings paths before a store sees them; the paths here re-check the few characters that would let a
value escape its tenant node (``/``, ``.`` segments, RTDB's forbidden characters), because a wrong
path would write into another tenant. Paths travel in the URL of RTDB's REST protocol, which
percent-decodes them, so every segment is percent-encoded: the key ``a%20b`` must be stored as
``a%20b``, not ``a b``, and a ``?`` must stay part of the key instead of starting a query string.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final
from urllib.parse import parse_qs, quote, urlsplit

from botmox_api.model import TENANT_ID_PATTERN, is_rtdb_key

# --- Where the database is.


@dataclass(frozen=True, slots=True)
class RtdbTarget:
    database_url: str
    """``https://HOST`` for production, ``http://HOST:PORT?ns=NAMESPACE`` for an emulator (the
    ``databaseURL`` firebase-admin would take)."""
    emulator: bool
    credentials_path: str | None
    """Service-account JSON for production; ``None`` means Application Default Credentials."""


class InvalidRtdbConfiguration(ValueError):
    """The RTDB variables are set but cannot be used; the message names the variable."""


def _default_database_url(project_id: str) -> str:
    # The URL Firebase gives a project's default instance.
    return f"https://{project_id}-default-rtdb.firebaseio.com"


def _namespace_of(database_url: str) -> str:
    parts = urlsplit(database_url)
    from_query = parse_qs(parts.query).get("ns")
    if from_query and from_query[0]:
        return from_query[0]
    host = parts.hostname or ""
    namespace = host.split(".")[0]
    if not namespace:
        raise InvalidRtdbConfiguration("FIREBASE_DATABASE_URL has no host to take the namespace from")
    return namespace


def resolve_rtdb_target(
    *,
    database_url: str | None,
    project_id: str | None,
    emulator_host: str | None,
    credentials_path: str | None,
) -> RtdbTarget | None:
    """``None`` when neither ``FIREBASE_DATABASE_URL`` nor ``FIREBASE_PROJECT_ID`` is set.

    Emulator when ``FIREBASE_DATABASE_EMULATOR_HOST`` is set (namespace from the URL's ``ns`` or its
    first host label, else ``<project>-default-rtdb``) or when the URL itself is ``http://…?ns=…``.
    """
    url = database_url or (_default_database_url(project_id) if project_id else None)
    if url is None:
        return None
    parts = urlsplit(url)
    if emulator_host:
        if "//" in emulator_host or "/" in emulator_host:
            raise InvalidRtdbConfiguration("FIREBASE_DATABASE_EMULATOR_HOST must be host:port")
        return RtdbTarget(f"http://{emulator_host}?ns={_namespace_of(url)}", True, None)
    if parts.scheme == "http":
        return RtdbTarget(f"http://{parts.netloc}?ns={_namespace_of(url)}", True, None)
    if parts.scheme != "https" or not parts.hostname:
        raise InvalidRtdbConfiguration("FIREBASE_DATABASE_URL must be an https:// URL")
    return RtdbTarget(f"https://{parts.netloc}", False, credentials_path)


# --- Where a tenant's data is.

STORAGE_POLICY_KEY: Final = "storage_policy"
TENANTS_PATH: Final = "tenants"
"""The node whose keys are the tenants (read shallow: keys only)."""
LEGACY_STORAGE_POLICY_PATH: Final = "settings/storage_policy"
"""The legacy server's global policy, at the root of the database, outside ``tenants``."""
# A root-level key nobody writes: reading it proves the database answers, and costs nothing.
READINESS_PATH: Final = "botmox_readiness_probe"


def _tenant_settings(tenant_id: str) -> str:
    if not TENANT_ID_PATTERN.fullmatch(tenant_id):
        raise ValueError(f"invalid tenant id {tenant_id!r}")
    return f"tenants/{tenant_id}/settings"


def settings_path(tenant_id: str, path: tuple[str, ...] = ()) -> str:
    """The URL path of a tenant's settings node, each segment percent-encoded."""
    node = _tenant_settings(tenant_id)
    for segment in path:
        if not is_rtdb_key(segment):
            raise ValueError(f"invalid settings path segment {segment!r}")
    return "/".join((node, *(quote(segment, safe="") for segment in path)))


def storage_policy_path(tenant_id: str) -> str:
    # ``settings_path(tenant_id, (STORAGE_POLICY_KEY,))``, on every write and read: the key is a
    # constant that percent-encoding leaves as it is (the tests hold the two equal).
    return f"{_tenant_settings(tenant_id)}/{STORAGE_POLICY_KEY}"
