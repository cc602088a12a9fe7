"""Where the RTDB is: production (``https://…``) or an emulator, resolved from the configuration.

firebase-admin itself decides "emulator or not" from the process environment
(``FIREBASE_DATABASE_EMULATOR_HOST``), which is global state. The stores instead hand firebase-admin
a ``databaseURL`` that already says it: ``http://HOST:PORT?ns=NAMESPACE`` is emulator mode for
firebase-admin whatever the environment holds, so two stores in one process can talk to two
different emulators (the tests rely on that).
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import parse_qs, urlsplit


@dataclass(frozen=True, slots=True)
class RtdbTarget:
    database_url: str
    """The ``databaseURL`` option for firebase-admin."""
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
