"""RTDB's REST protocol, as firebase-admin 7.x speaks it, on an aiohttp client of one store's own.

A call awaits its answer on the event loop: no thread is held while RTDB thinks, so a store's
throughput against an RTDB 40 ms away is bounded by its connection pool (``max_connections``), not
by a thread pool. Requests are firebase-admin's: ``<databaseURL>/<path>.json``, ``ns=<namespace>``
on every request to an emulator, ``Authorization: Bearer <token>`` (``_rtdb_auth``),
``X-Firebase-ETag: true`` on a read that needs the ETag, ``if-match`` on a conditional PUT (412
carries the current value and its ETag), ``print=silent`` on PUT and PATCH, errors as
``{"error": "..."}``.

Connections: one aiohttp session per store, created on first use (building a store does no I/O)
and closed by ``aclose()``; keep-alive; connect and read timeouts of ``http_timeout_s`` each, as
firebase-admin's ``httpTimeout`` gave requests. Waiting for a free connection is not bounded, as
waiting for a worker thread was not. The environment's proxy variables are not read (aiohttp would
read them, and ``~/.netrc``, on every request).

Retries follow firebase-admin's session for GET only: once after a connection that failed to open,
once after a read timeout or a dropped connection, up to 4 times on HTTP 500/503 (Retry-After
honoured), with urllib3's backoff (0.5 s doubling, from the second retry). Every other request is
sent exactly once (aiohttp's own re-send on a dropped connection is off): a write whose answer is
lost may have been applied, and re-sending it could apply it twice or undo a write acknowledged in
between (``docs/contracts/stores.md``).
"""

from __future__ import annotations

import asyncio
import json
import ssl
from dataclasses import dataclass, field
from typing import Final
from urllib.parse import parse_qs, urlsplit

import aiohttp
import anyio.to_thread
import certifi
from google.auth.exceptions import DefaultCredentialsError
from yarl import URL

from botmox_api.model import JsonValue, Readiness
from botmox_api.stores._rtdb import READINESS_PATH, RtdbTarget
from botmox_api.stores._rtdb_auth import EMULATOR_AUTHORIZATION, AccessToken

DEFAULT_HTTP_TIMEOUT_S: Final = 5.0
DEFAULT_MAX_CONNECTIONS: Final = 100

_JSON: Final = "application/json"
# A request's URL and headers are built once, not per request: paths seen last are kept, up to this
# many (one store serves a few nodes per tenant; a worker, a bounded set of busy tenants).
_URL_CACHE_SIZE: Final = 4096
# firebase-admin's retry policy (firebase_admin._http_client.DEFAULT_RETRY_CONFIG), for GET.
_CONNECT_RETRIES: Final = 1
_READ_RETRIES: Final = 1
_STATUS_RETRIES: Final = 4
_RETRY_STATUSES: Final = frozenset({500, 503})
_BACKOFF_FACTOR_S: Final = 0.5
_BACKOFF_MAX_S: Final = 120.0


# --- What can go wrong (``rtdb_reason`` words it for operators).


class RtdbClosed(RuntimeError):
    """The store was closed; its connections are gone."""


class RtdbTimeout(Exception):
    """No answer within the timeout (connecting, or reading the answer)."""


class RtdbUnreachable(Exception):
    """The connection could not be opened, or was dropped before the answer was complete."""


class RtdbAnswered(Exception):
    """RTDB answered with an error status."""

    def __init__(self, status: int, body: bytes, etag: str | None = None) -> None:
        super().__init__(f"HTTP {status}")
        self.status = status
        self.body = body
        self.etag = etag


def answer_lost(error: BaseException) -> bool:
    """Whether a write that failed so may have been applied: no answer, or a server error."""
    if isinstance(error, RtdbAnswered):
        return error.status >= 500
    return isinstance(error, RtdbTimeout | RtdbUnreachable)


def rtdb_reason(error: BaseException, *, timeout_s: float) -> str:
    """The operator-facing reason for a failed RTDB call, free of URLs and credentials."""
    if isinstance(error, RtdbTimeout):
        return f"RTDB did not answer within {timeout_s:g} s"
    if isinstance(error, RtdbUnreachable):
        return "RTDB unreachable: connection failed"
    if isinstance(error, RtdbAnswered):
        return f"RTDB answered HTTP {error.status}: {_server_message(error.body)}"
    if isinstance(error, RtdbClosed):
        return str(error)
    if isinstance(error, DefaultCredentialsError):
        return "No Google credentials found (set GOOGLE_APPLICATION_CREDENTIALS)"
    if isinstance(error, OSError):
        return "Cannot read the RTDB credentials file (GOOGLE_APPLICATION_CREDENTIALS)"
    if isinstance(error, ValueError):
        return "Invalid RTDB configuration or credentials"
    # Configuration problems surface on first use (unusable credentials, a token refresh refused).
    return f"RTDB client error ({type(error).__name__})"


def _server_message(body: bytes) -> str:
    try:
        parsed = json.loads(body)
    except ValueError:
        return "non-JSON error body"
    if isinstance(parsed, dict) and isinstance(parsed.get("error"), str):
        return str(parsed["error"])
    return "no error message"


# --- The retry policy.


@dataclass(slots=True)
class _GetRetries:
    """What is left of a GET's retries (urllib3's counters, as firebase-admin configures them)."""

    connect: int = _CONNECT_RETRIES
    read: int = _READ_RETRIES
    status: int = _STATUS_RETRIES
    consecutive: int = field(default=0)

    def after_error(self, error: BaseException) -> bool:
        if isinstance(error, aiohttp.ClientConnectorError | aiohttp.ConnectionTimeoutError):
            self.connect -= 1
            left = self.connect
        else:
            self.read -= 1
            left = self.read
        self.consecutive += 1
        return left >= 0

    def after_status(self) -> bool:
        self.status -= 1
        self.consecutive += 1
        return self.status >= 0

    def backoff_s(self, retry_after: str | None = None) -> float:
        if retry_after is not None and retry_after.strip().isdigit():
            return float(retry_after)
        if self.consecutive <= 1:
            return 0.0
        return min(_BACKOFF_MAX_S, _BACKOFF_FACTOR_S * 2.0 ** (self.consecutive - 1))


# --- The client.


class _Answer:
    __slots__ = ("body", "etag", "status")

    def __init__(self, status: int, body: bytes, etag: str | None) -> None:
        self.status = status
        self.body = body
        self.etag = etag

    def value(self) -> JsonValue:
        try:
            parsed: JsonValue = json.loads(self.body) if self.body else None
        except ValueError as error:
            raise RtdbAnswered(self.status, b'{"error": "answer is not JSON"}') from error
        return parsed


# As requests' json=: ASCII escapes, and no NaN (RTDB refuses it anyway). One encoder: json.dumps
# builds a new one per call when given options.
_ENCODER: Final = json.JSONEncoder(allow_nan=False, separators=(",", ":"))


def _encode(value: JsonValue) -> bytes:
    return _ENCODER.encode(value).encode("ascii")


# What a request sends besides ``Authorization`` (headers are matched case-insensitively).
_PLAIN: Final[tuple[tuple[str, str], ...]] = ()
_WITH_ETAG: Final = (("X-Firebase-ETag", "true"),)
_WITH_BODY: Final = (("Content-Type", _JSON),)


class RtdbRestClient:
    """One store's connections to its RTDB, and the REST calls the stores make."""

    def __init__(
        self,
        target: RtdbTarget,
        *,
        http_timeout_s: float = DEFAULT_HTTP_TIMEOUT_S,
        max_connections: int = DEFAULT_MAX_CONNECTIONS,
    ) -> None:
        parts = urlsplit(target.database_url)
        self._base_url = f"{parts.scheme}://{parts.netloc}"
        # firebase-admin puts the namespace after a call's own parameters.
        namespace = parse_qs(parts.query).get("ns", [""])[0]
        self._suffix = f"ns={namespace}" if target.emulator else ""
        self._emulator = target.emulator
        self._token = None if target.emulator else AccessToken(target.credentials_path)
        self._http_timeout_s = http_timeout_s
        self._max_connections = max_connections
        self._urls: dict[tuple[str, str], URL] = {}
        self._headers: dict[tuple[tuple[str, str], ...], tuple[str, dict[str, str]]] = {}
        self._session: aiohttp.ClientSession | None = None
        self._opening: asyncio.Lock | None = None
        self._closed = False

    @property
    def http_timeout_s(self) -> float:
        return self._http_timeout_s

    # The calls, named after the firebase-admin ``Reference`` methods they replace.

    async def get(self, path: str, *, shallow: bool = False) -> JsonValue:
        answer = await self._request("GET", path, "shallow=true" if shallow else "", _PLAIN)
        return answer.value()

    async def get_with_etag(self, path: str) -> tuple[JsonValue, str | None]:
        answer = await self._request("GET", path, "", _WITH_ETAG)
        return answer.value(), answer.etag

    async def set(self, path: str, value: JsonValue) -> None:
        await self._request("PUT", path, "print=silent", _WITH_BODY, body=_encode(value))

    async def update(self, path: str, value: JsonValue) -> None:
        await self._request("PATCH", path, "print=silent", _WITH_BODY, body=_encode(value))

    async def delete(self, path: str) -> None:
        await self._request("DELETE", path, "", _PLAIN)

    async def set_if_unchanged(
        self, path: str, etag: str, value: JsonValue
    ) -> tuple[bool, JsonValue, str | None]:
        """``(True, value, new etag)`` when written; ``(False, current value, its etag)`` on 412."""
        try:
            answer = await self._request("PUT", path, "", _WITH_BODY, body=_encode(value), if_match=etag)
        except RtdbAnswered as refused:
            if refused.status != 412 or refused.etag is None:
                raise
            return False, _Answer(412, refused.body, refused.etag).value(), refused.etag
        return True, value, answer.etag

    async def check_ready(self) -> Readiness:
        """Ready when a shallow read of a key nobody writes answers; never raises."""
        try:
            await self.get(READINESS_PATH, shallow=True)
        except Exception as error:
            return Readiness(False, rtdb_reason(error, timeout_s=self._http_timeout_s))
        return Readiness(True)

    async def aclose(self) -> None:
        self._closed = True
        session, self._session = self._session, None
        if session is not None:
            await session.close()

    # The transport.

    async def _request(
        self,
        method: str,
        path: str,
        params: str,
        extra_headers: tuple[tuple[str, str], ...],
        *,
        body: bytes | None = None,
        if_match: str | None = None,
    ) -> _Answer:
        # The session and the emulator's header are there after the first call: no await for them.
        session = self._session or await self._open()
        url = self._url(path, params)
        retries = None  # a GET's retry counters, made on its first failure
        while True:
            authorization = (
                EMULATOR_AUTHORIZATION if self._token is None else await self._token.authorization()
            )
            headers = self._headers_for(extra_headers, authorization)
            if if_match is not None:
                headers = headers.copy()
                headers["if-match"] = if_match
            try:
                async with session.request(method, url, data=body, headers=headers) as response:
                    status = response.status
                    answer = _Answer(status, await response.read(), response.headers.get("ETag"))
                    # urllib3 honours it on 503 only (of the statuses retried here).
                    retry_after = response.headers.get("Retry-After") if status == 503 else None
            except (TimeoutError, aiohttp.ClientError) as error:
                if method != "GET":
                    raise _failure(error) from error
                retries = retries or _GetRetries()
                if not retries.after_error(error):
                    raise _failure(error) from error
                await asyncio.sleep(retries.backoff_s())
                continue
            if status < 400:
                return answer
            if status in _RETRY_STATUSES and method == "GET":
                retries = retries or _GetRetries()
                if retries.after_status():
                    await asyncio.sleep(retries.backoff_s(retry_after))
                    continue
            if status == 401 and self._token is not None:
                self._token.expire()
            raise RtdbAnswered(status, answer.body, answer.etag)

    def _url(self, path: str, params: str) -> URL:
        key = (path, params)
        url = self._urls.get(key)
        if url is None:
            if len(self._urls) >= _URL_CACHE_SIZE:
                self._urls.clear()
            query = "&".join(part for part in (params, self._suffix) if part)
            # Encoded already: the path's segments are percent-encoded (``_rtdb.settings_path``),
            # and yarl must not decode ``%2E`` or ``%2F`` in them back into path syntax.
            url = URL(f"{self._base_url}/{path}.json" + (f"?{query}" if query else ""), encoded=True)
            self._urls[key] = url
        return url

    def _headers_for(self, extra: tuple[tuple[str, str], ...], authorization: str) -> dict[str, str]:
        # aiohttp copies the headers it is given (into a CIMultiDict of its own): these are never
        # changed once built, only replaced when the token changes.
        cached = self._headers.get(extra)
        if cached is not None and cached[0] == authorization:
            return cached[1]
        headers = dict(extra)
        headers["Authorization"] = authorization
        self._headers[extra] = (authorization, headers)
        return headers

    async def _open(self) -> aiohttp.ClientSession:
        if self._closed:
            raise RtdbClosed("RTDB store is closed")
        if self._session is not None:
            return self._session
        if self._opening is None:
            self._opening = asyncio.Lock()
        async with self._opening:
            if self._session is None:
                # Loading the CA bundle reads a file: once, off the event loop (production only).
                tls = None if self._emulator else await anyio.to_thread.run_sync(_tls_context)
                if self._closed:
                    raise RtdbClosed("RTDB store is closed")
                self._session = aiohttp.ClientSession(
                    connector=aiohttp.TCPConnector(
                        limit=self._max_connections, limit_per_host=0, ssl=tls or True
                    ),
                    timeout=aiohttp.ClientTimeout(
                        total=None, sock_connect=self._http_timeout_s, sock_read=self._http_timeout_s
                    ),
                    trust_env=False,
                )
                # aiohttp re-sends a request whose connection dropped when its method is
                # "idempotent", PUT and DELETE included, and a GET on top of the policy here. Only
                # this (private, but in __slots__ and set by aiohttp's own test client) turns it
                # off; test_rtdb_faults.py counts the requests that reach the server.
                self._session._retry_connection = False
            return self._session


def _tls_context() -> ssl.SSLContext:
    # The CA bundle requests used for firebase-admin: certifi's, whatever the host's store holds.
    return ssl.create_default_context(cafile=certifi.where())


def _failure(error: BaseException) -> Exception:
    if isinstance(error, TimeoutError):  # aiohttp's connect and read timeouts are TimeoutErrors
        return RtdbTimeout(str(error))
    return RtdbUnreachable(type(error).__name__)


def readiness_client(target: RtdbTarget, *, http_timeout_s: float) -> RtdbRestClient:
    """A client for ``check_ready`` alone, one connection of its own: health checks never wait
    for, nor take, a connection of user traffic."""
    return RtdbRestClient(target, http_timeout_s=http_timeout_s, max_connections=1)
