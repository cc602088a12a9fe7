"""The request gate: one pure-ASGI middleware that every request passes first.

In order: correlation id (echoed or generated, bound to every log line), CORS preflight, then for
``/api/v1`` routes authentication (401/403), rate limit (429) and the settings role check (403), all
before routing, so an unknown route is 404 only after authentication (``docs/contracts/api-v1.md``);
the URLs are the app's (``app.py``), handed to the gate when the app adds it.
A request without an internal token from a client address that is already over its limit is
refused (429) before its token is verified, so a flood of bad tokens costs no signature checks. It
also turns any exception that escapes the application into a 500 envelope, writes one
access-log line per request (method, path, status, duration; never headers, query strings or bodies)
and counts the request in the metrics (``request_metrics``: route template, status, duration).

A pure ASGI middleware rather than ``BaseHTTPMiddleware``: no extra task or body copy per request.

The gate's policies live here too, each built once per app:

- CORS as ``docs/contracts/api-v1.md`` states it, not Starlette's middleware, whose refusals are plain
  text. A preflight (``OPTIONS`` with ``Origin`` and ``Access-Control-Request-Method``) from a listed
  origin gets 204 with the full method and header lists; from any other origin, 403 ``FORBIDDEN`` in
  the envelope and no ``Access-Control-Allow-*`` header. Simple responses to a listed origin carry the
  allow-origin and expose headers. Origins compare case-insensitively; ``*`` in ``CORS_ORIGINS``
  allows any origin. Every answer depends on ``Origin``, so every response carries ``Vary: Origin``
  (``VARY``), or a shared cache could hand one origin's answer to another.
- The client address a request is counted against: the peer, or what a trusted proxy reports. Behind
  a reverse proxy (Caddy in the deploy) every request comes from the proxy's address, so the
  per-address rate limit would count the proxy, not the clients. ``X-Forwarded-For`` is believed only
  when the peer is in ``FORWARDED_ALLOW_IPS``; the chain is then read from the right, skipping trusted
  hops, and the first untrusted address is the client. Entries left of it were written by the client
  itself and are never believed. By default no peer is trusted and the header is ignored.
- A fixed-window request counter per key (a principal, ``tenant:uid``, or a client address), with
  bounded memory: every window the counter table starts afresh (the old one is dropped whole), and
  ``max_keys`` caps even one window's keys, refusing new keys' budgets rather than growing (the oldest
  keys are evicted first). Single-threaded use on the event loop: no locks needed.
"""

from __future__ import annotations

import ipaddress
import math
import time
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass
from typing import Final

import structlog
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from botmox_api import logs
from botmox_api.auth import SETTINGS_ROLES, Authenticator, Principal, bearer_token
from botmox_api.config import IpNetwork
from botmox_api.envelope import error_response
from botmox_api.errors import ApiError, Forbidden, RateLimited, Unauthorized
from botmox_api.request_metrics import RequestMetrics

# --- CORS.

ALLOWED_METHODS: Final = ("GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")
ALLOWED_HEADERS: Final = ("Authorization", "Content-Type", "If-Match", logs.CORRELATION_HEADER)
EXPOSED_HEADERS: Final = ("ETag", logs.CORRELATION_HEADER)
PREFLIGHT_MAX_AGE_S: Final = 600
VARY: Final = (b"vary", b"Origin")

RawHeaders = list[tuple[bytes, bytes]]


class CorsPolicy:
    def __init__(self, origins: Iterable[str]) -> None:
        normalised = {o.strip().rstrip("/").lower() for o in origins if o.strip()}
        self._any = "*" in normalised
        self._origins = frozenset(normalised - {"*"})
        # Built once: the header lists never change.
        self._preflight_tail: RawHeaders = [
            (b"access-control-allow-methods", ", ".join(ALLOWED_METHODS).encode()),
            (b"access-control-allow-headers", ", ".join(ALLOWED_HEADERS).encode()),
            (b"access-control-max-age", str(PREFLIGHT_MAX_AGE_S).encode()),
        ]
        self._expose = (b"access-control-expose-headers", ", ".join(EXPOSED_HEADERS).encode())

    def allows(self, origin: str) -> bool:
        return self._any or origin.rstrip("/").lower() in self._origins

    def preflight_headers(self, origin: str) -> RawHeaders:
        return [(b"access-control-allow-origin", origin.encode("latin-1")), *self._preflight_tail]

    def response_headers(self, origin: str) -> RawHeaders:
        return [(b"access-control-allow-origin", origin.encode("latin-1")), self._expose]


# --- Client addresses.

FORWARDED_FOR: Final = b"x-forwarded-for"
UNKNOWN: Final = "unknown"


def _address(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(text.strip().strip("[]"))
    except ValueError:
        return None


class ClientAddresses:
    def __init__(self, trusted: Iterable[IpNetwork]) -> None:
        self._trusted = tuple(trusted)

    def _is_trusted(self, address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
        return any(address in network for network in self._trusted)

    def of(self, scope: Scope) -> str:
        client = scope.get("client")
        peer_text = str(client[0]) if client else UNKNOWN
        if not self._trusted:
            return peer_text  # nothing to parse: no proxy is believed
        peer = _address(peer_text)
        if peer is None or not self._is_trusted(peer):
            return peer_text
        chain = [
            hop
            for name, value in scope["headers"]
            if name == FORWARDED_FOR
            for hop in value.decode("latin-1").split(",")
        ]
        client_address = peer
        for hop in reversed(chain):
            address = _address(hop)
            if address is None:
                break  # not an address: the hop that reported it is the last one we can name
            client_address = address
            if not self._is_trusted(address):
                break
        return str(client_address)


# --- Rate limit.


@dataclass(frozen=True, slots=True)
class RateDecision:
    allowed: bool
    retry_after_s: int = 0


_ALLOWED = RateDecision(True)


class FixedWindowRateLimiter:
    def __init__(
        self,
        max_requests: int,
        window_s: float,
        *,
        max_keys: int = 100_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._max = max_requests
        self._window = window_s
        self._max_keys = max_keys
        self._clock = clock
        self._window_start = clock()
        self._counts: dict[str, int] = {}

    @property
    def tracked_keys(self) -> int:
        return len(self._counts)

    def _roll(self) -> float:
        now = self._clock()
        elapsed = now - self._window_start
        if elapsed >= self._window:
            # Align to the window grid so Retry-After stays truthful after idle periods.
            self._window_start = now - (elapsed % self._window)
            self._counts = {}
        return now

    def _refused(self, now: float) -> RateDecision:
        remaining = self._window_start + self._window - now
        return RateDecision(False, max(1, math.ceil(remaining)))

    def peek(self, key: str) -> RateDecision:
        """Whether ``key`` has already spent its budget in this window, without counting a request."""
        now = self._roll()
        return _ALLOWED if self._counts.get(key, 0) < self._max else self._refused(now)

    def hit(self, key: str) -> RateDecision:
        now = self._roll()
        count = self._counts.get(key, 0) + 1
        if count == 1 and len(self._counts) >= self._max_keys:
            # Evict the oldest key rather than grow without bound.
            self._counts.pop(next(iter(self._counts)))
        self._counts[key] = count
        return _ALLOWED if count <= self._max else self._refused(now)


# --- The gate.

PRINCIPAL_STATE_KEY: Final = "principal"


def _is_under(path: str, prefix: str) -> bool:
    return path == prefix or path.startswith(prefix + "/")


class RequestGate:
    def __init__(
        self,
        app: ASGIApp,
        *,
        authenticator: Authenticator,
        rate_limiter: FixedWindowRateLimiter,
        cors: CorsPolicy,
        client_addresses: ClientAddresses,
        logger: structlog.typing.FilteringBoundLogger,
        access_log: logs.AccessLog,
        request_metrics: RequestMetrics,
        api_prefix: str,
        health_paths: Collection[str],
        public_paths: Collection[str],
        settings_path: str,
    ) -> None:
        """``health_paths`` need no token and are never limited; ``public_paths`` (the OpenAPI
        document, an agent's registration, whose pairing code is its credential) need no token and
        are limited per client address; any other path under ``api_prefix`` is authenticated, and
        ``settings_path`` and below want a settings role."""
        self.app = app
        self._api_prefix = api_prefix
        self._health_paths = frozenset(health_paths)
        self._public_paths = frozenset(public_paths)
        self._settings_path = settings_path
        self._auth = authenticator
        self._limiter = rate_limiter
        self._cors = cors
        self._addresses = client_addresses
        self._log = logger
        self._access_log = access_log
        self._request_metrics = request_metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        origin: str | None = None
        preflight_method: bytes | None = None
        authorization: str | None = None
        received_id: str | None = None
        for name, value in scope["headers"]:
            if name == b"origin":
                origin = value.decode("latin-1")
            elif name == b"authorization":
                authorization = value.decode("latin-1")
            elif name == logs.CORRELATION_HEADER_BYTES:
                received_id = value.decode("latin-1")
            elif name == b"access-control-request-method":
                preflight_method = value
        request_id = logs.correlation_id(received_id)
        context_token = logs.bind_request(request_id)
        extra_headers: list[tuple[bytes, bytes]] = [
            (logs.CORRELATION_HEADER_BYTES, request_id.encode()),
            VARY,
        ]
        is_preflight = scope["method"] == "OPTIONS" and origin is not None and preflight_method is not None
        if origin is not None and not is_preflight and self._cors.allows(origin):
            extra_headers.extend(self._cors.response_headers(origin))
        state = {"status": 500, "started": False}

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                state["status"] = message["status"]
                state["started"] = True
                message["headers"] = [*message.get("headers", ()), *extra_headers]
            await send(message)

        try:
            response = await self._gatekeep(scope, origin, is_preflight, authorization)
            if response is not None:
                await response(scope, receive, send_with_headers)
            else:
                await self.app(scope, receive, send_with_headers)
        except Exception:
            self._log.exception("unhandled_error", method=scope["method"], path=scope["path"])
            if not state["started"]:
                await error_response(500, "INTERNAL_ERROR", "Internal server error")(
                    scope, receive, send_with_headers
                )
        finally:
            elapsed_s = time.perf_counter() - started
            status = state["status"]
            self._access_log.write(
                method=scope["method"],
                path=scope["path"],
                status=status,
                duration_ms=round(elapsed_s * 1000, 3),
            )
            self._request_metrics.observe(scope, status, elapsed_s)
            logs.unbind_request(context_token)

    async def _gatekeep(
        self, scope: Scope, origin: str | None, is_preflight: bool, authorization: str | None
    ) -> Response | None:
        """A response that ends the request here, or ``None`` to route it."""
        if is_preflight:
            assert origin is not None
            if self._cors.allows(origin):
                return Response(
                    status_code=204,
                    headers=dict(
                        (k.decode(), v.decode("latin-1")) for k, v in self._cors.preflight_headers(origin)
                    ),
                )
            return Forbidden("Origin is not allowed", details={"origin": origin}).response()
        path: str = scope["path"]
        if path in self._health_paths:
            return None  # health needs no token and is never rate limited
        if not _is_under(path, self._api_prefix) or path in self._public_paths:
            # Public: counted per client address, like any request without a valid token.
            limited = self._limit(self._address_key(scope))
            return limited.response() if limited else None
        token = bearer_token(authorization)
        principal = self._auth.internal(token)
        if principal is None:
            address = self._address_key(scope)
            spent = self._limiter.peek(address)
            if not spent.allowed:
                return RateLimited(spent.retry_after_s).response()
            try:
                principal = await self._auth.verify(token)
            except ApiError as error:
                limited = self._limit(address)
                return (limited or error).response()
        if not principal.is_internal:
            limited = self._limit(principal.rate_limit_key)
            if limited:
                return limited.response()
        if _is_under(path, self._settings_path) and not principal.has_any_role(SETTINGS_ROLES):
            return Forbidden("Role api or admin is required").response()
        scope.setdefault("state", {})[PRINCIPAL_STATE_KEY] = principal
        return None

    def _address_key(self, scope: Scope) -> str:
        return f"a:{self._addresses.of(scope)}"

    def _limit(self, key: str) -> RateLimited | None:
        decision = self._limiter.hit(key)
        return None if decision.allowed else RateLimited(decision.retry_after_s)


def principal_of(scope: Scope) -> Principal | None:
    state = scope.get("state")
    principal = state.get(PRINCIPAL_STATE_KEY) if state else None
    return principal if isinstance(principal, Principal) else None


def required_principal(scope: Scope) -> Principal:
    """The principal the gate authenticated; the gate authenticates every ``/api/v1`` route but
    health, so the ``Unauthorized`` is never reached from an authenticated route."""
    principal = principal_of(scope)
    if principal is None:
        raise Unauthorized("Bearer token is required")
    return principal
