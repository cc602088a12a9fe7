"""RTDB as the stores reach it: where the database is, where a tenant's data is in it, and the
connection (one firebase-admin ``App`` owned by one store, and the bridge from async code to its
blocking calls).

Where: production (``https://…``) or an emulator, resolved from the configuration. firebase-admin
itself decides "emulator or not" from the process environment (``FIREBASE_DATABASE_EMULATOR_HOST``),
which is global state. The stores instead hand firebase-admin a ``databaseURL`` that already says it:
``http://HOST:PORT?ns=NAMESPACE`` is emulator mode for firebase-admin whatever the environment holds,
so two stores in one process can talk to two different emulators (the tests rely on that).

Tenant-scoped paths: ``tenants/{tenant_id}/settings/{path}``. The API validates tenant ids and
settings paths before a store sees them; the paths here re-check the few characters that would let a
value escape its tenant node (``/``, ``.`` segments, RTDB's forbidden characters), because a wrong
path would write into another tenant. Paths travel in the URL of RTDB's REST protocol, which
percent-decodes them, so every segment is percent-encoded: the key ``a%20b`` must be stored as
``a%20b``, not ``a b``, and a ``?`` must stay part of the key instead of starting a query string.

The connection: firebase-admin's RTDB client is synchronous (requests). Each call runs in a worker
thread through ``anyio.to_thread`` with the store's own ``CapacityLimiter``, so a slow RTDB can tie up
at most ``max_threads`` threads and never the event loop. The ``App`` is created on first use (building
a store does no I/O, not even reading a credentials file) under a unique name, so nothing depends on
firebase-admin's default app, and it is deleted by ``aclose()``.

firebase-admin's HTTP session retries any request once after a read timeout or a dropped connection
(and up to 4 times on HTTP 500/503). A write whose answer is lost may well have been applied, so a
re-sent write could land twice or undo a write acknowledged in between. The session built here keeps
that retry policy for GET and sends every other request exactly once.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Final, Self, TypeVar
from urllib.parse import parse_qs, quote, urlsplit

import anyio
import anyio.to_thread
import firebase_admin
import requests
import urllib3
from firebase_admin import credentials, db, exceptions
from google.auth.exceptions import DefaultCredentialsError
from requests.adapters import HTTPAdapter
from urllib3 import BaseHTTPResponse
from urllib3.connectionpool import ConnectionPool
from urllib3.util import Retry

from botmox_api.model import TENANT_ID_PATTERN, Readiness, is_rtdb_key

T = TypeVar("T")

# --- Where the database is.


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


# --- Where a tenant's data is.

STORAGE_POLICY_KEY: Final = "storage_policy"
# A root-level key nobody writes: reading it proves the database answers, and costs nothing.
READINESS_PATH: Final = "botmox_readiness_probe"


def settings_path(tenant_id: str, path: tuple[str, ...] = ()) -> str:
    """The URL path of a tenant's settings node, each segment percent-encoded."""
    if not TENANT_ID_PATTERN.fullmatch(tenant_id):
        raise ValueError(f"invalid tenant id {tenant_id!r}")
    for segment in path:
        if not is_rtdb_key(segment):
            raise ValueError(f"invalid settings path segment {segment!r}")
    return "/".join(("tenants", tenant_id, "settings", *(quote(segment, safe="") for segment in path)))


def storage_policy_path(tenant_id: str) -> str:
    return settings_path(tenant_id, (STORAGE_POLICY_KEY,))


# --- The connection.

DEFAULT_HTTP_TIMEOUT_S: Final = 5.0
# requests keeps 10 pooled connections per host; more threads would only open throwaway sockets.
DEFAULT_MAX_THREADS: Final = 10


# What requests does with max_retries=0: give up at once, whatever went wrong.
_SEND_ONCE: Final = Retry(0, read=False)


class _RetryGetOnly(Retry):
    """GET follows the policy this one copies; any other request is sent once, so a write whose
    answer is lost fails the call instead of being sent again."""

    def increment(
        self,
        method: str | None = None,
        url: str | None = None,
        response: BaseHTTPResponse | None = None,
        error: Exception | None = None,
        _pool: ConnectionPool | None = None,
        _stacktrace: TracebackType | None = None,
    ) -> Self:
        if method is not None and method.upper() == "GET":
            return super().increment(method, url, response, error, _pool, _stacktrace)
        _SEND_ONCE.increment(method, url, response, error, _pool, _stacktrace)
        raise AssertionError("a retry policy with no retries left always gives up")


def _send_writes_once(session: requests.Session) -> None:
    for prefix in ("http://", "https://"):
        adapter = session.get_adapter(prefix)
        if not isinstance(adapter, HTTPAdapter):
            raise TypeError(f"unexpected transport adapter {type(adapter).__name__}")
        # Retry keeps each constructor argument as an attribute of the same name (Retry.new copies
        # it that way too), so this is firebase-admin's policy, every setting kept.
        adapter.max_retries = _RetryGetOnly(**vars(adapter.max_retries))


class RtdbClosed(RuntimeError):
    """The store was closed; its app is gone."""


class RtdbConnection:
    def __init__(
        self,
        target: RtdbTarget,
        *,
        purpose: str,
        http_timeout_s: float = DEFAULT_HTTP_TIMEOUT_S,
        max_threads: int = DEFAULT_MAX_THREADS,
    ) -> None:
        self._target = target
        self._app_name = f"botmox-{purpose}-{uuid.uuid4().hex}"
        self._http_timeout_s = http_timeout_s
        self._limiter = anyio.CapacityLimiter(max_threads)
        self._lock = threading.Lock()
        self._app: firebase_admin.App | None = None
        self._closed = False

    @property
    def http_timeout_s(self) -> float:
        return self._http_timeout_s

    def _credential(self) -> Any:
        if self._target.emulator:
            # Never consulted: firebase-admin sends ``Bearer owner`` to an emulator by itself.
            # ApplicationDefault is lazy, so it reads nothing either.
            return credentials.ApplicationDefault()
        if self._target.credentials_path:
            return credentials.Certificate(self._target.credentials_path)
        return credentials.ApplicationDefault()

    def _ensure_app(self) -> firebase_admin.App:
        with self._lock:
            if self._closed:
                raise RtdbClosed("RTDB store is closed")
            if self._app is None:
                options = {"databaseURL": self._target.database_url, "httpTimeout": self._http_timeout_s}
                app = firebase_admin.initialize_app(self._credential(), options, name=self._app_name)
                # firebase-admin caches its HTTP client per app without a lock; creating it here,
                # under ours, keeps racing threads from each building (and leaking) one.
                try:
                    root = db.reference("/", app=app)
                    # firebase-admin has no option for its retry policy; its session is reachable
                    # only through a reference's client.
                    _send_writes_once(root._client.session)
                except BaseException:
                    firebase_admin.delete_app(app)  # so the next call can try again under the same name
                    raise
                self._app = app
            return self._app

    def reference(self, path: str) -> db.Reference:
        """Blocking; call only inside ``run``."""
        return db.reference(path, app=self._ensure_app())

    async def run(self, call: Callable[[], T]) -> T:
        return await anyio.to_thread.run_sync(call, limiter=self._limiter)

    async def check_ready(self) -> Readiness:
        """Ready when a shallow read of a key nobody writes answers; never raises."""

        def call() -> None:
            self.reference(READINESS_PATH).get(shallow=True)

        try:
            await self.run(call)
        except Exception as error:
            return Readiness(False, rtdb_reason(error, timeout_s=self.http_timeout_s))
        return Readiness(True)

    async def aclose(self) -> None:
        with self._lock:
            self._closed = True
            app, self._app = self._app, None
        if app is not None:
            await anyio.to_thread.run_sync(firebase_admin.delete_app, app)


def readiness_connection(target: RtdbTarget, *, purpose: str, http_timeout_s: float) -> RtdbConnection:
    """A connection for ``check_ready`` alone: its own app (so its own HTTP session) and one
    thread, so health checks never wait for, nor take, a thread or a socket of user traffic."""
    return RtdbConnection(
        target, purpose=f"{purpose}-readiness", http_timeout_s=http_timeout_s, max_threads=1
    )


def rtdb_reason(error: BaseException, *, timeout_s: float) -> str:
    """The operator-facing reason for a failed RTDB call, free of URLs and credentials."""
    if isinstance(error, exceptions.DeadlineExceededError) or _timed_out_after_retry(error):
        return f"RTDB did not answer within {timeout_s:g} s"
    if isinstance(error, exceptions.FirebaseError):
        response = error.http_response
        if response is None:
            if isinstance(error, exceptions.UnavailableError):
                return "RTDB unreachable: connection failed"
            return f"RTDB call failed ({error.code})"
        return f"RTDB answered HTTP {response.status_code}: {_server_message(response)}"
    if isinstance(error, RtdbClosed):
        return str(error)
    if isinstance(error, DefaultCredentialsError):
        return "No Google credentials found (set GOOGLE_APPLICATION_CREDENTIALS)"
    if isinstance(error, OSError):
        return "Cannot read the RTDB credentials file (GOOGLE_APPLICATION_CREDENTIALS)"
    if isinstance(error, ValueError):
        return "Invalid RTDB configuration or credentials"
    # Configuration problems surface on first use (bad credentials file, unusable URL).
    return f"RTDB client error ({type(error).__name__})"


def _timed_out_after_retry(error: BaseException) -> bool:
    """urllib3 retries a read timeout once, then requests reports a ConnectionError whose
    MaxRetryError names the timeout as its reason; firebase-admin calls that "unavailable"."""
    cause = getattr(error, "cause", None)
    if not isinstance(cause, requests.exceptions.ConnectionError) or not cause.args:
        return False
    retry_error = cause.args[0]
    if not isinstance(retry_error, urllib3.exceptions.MaxRetryError):
        return False
    # NewConnectionError (refused) subclasses ConnectTimeoutError in urllib3 2: not a timeout here.
    reason = retry_error.reason
    return isinstance(reason, urllib3.exceptions.TimeoutError) and not isinstance(
        reason, urllib3.exceptions.NewConnectionError
    )


def _server_message(response: Any) -> str:
    try:
        body = response.json()
    except ValueError:
        return "non-JSON error body"
    if isinstance(body, dict) and isinstance(body.get("error"), str):
        return str(body["error"])
    return "no error message"
