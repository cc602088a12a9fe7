"""The API's errors: each ``ApiError`` subclass is one envelope ``code`` and HTTP status, and every
error the framework or a route raises becomes an envelope; nothing else reaches a client.

Routes and the request gate raise ``ApiError``s; ``ApiError.response`` is the one place that turns
one into ``{"success": false, "error": {"code", "message", "details"?}}``. Store failures
(``model.StoreError``) are mapped here too, so the route code never builds an error body, and
counted here (``botmox_api_store_errors_total``, ``request_metrics``) when their answer is sent.

The exception handlers: ``ApiError`` → its code/status; Starlette's ``HTTPException`` (unknown route
404, wrong method 405) → ``NOT_FOUND``/``METHOD_NOT_ALLOWED`` with ``Allow``; FastAPI's request
validation (422) → 400. Unexpected exceptions are caught by the request gate (500 ``INTERNAL_ERROR``).
A 502 is logged here with its cause (the client only gets the backend's message and reason): the line
carries the request's correlation id, and the logger redacts credentials in it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import ClassVar, Final

from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import Request
from starlette.responses import Response
from structlog.typing import FilteringBoundLogger

from botmox_api.agents import AgentRefused, rfc3339
from botmox_api.envelope import error_response
from botmox_api.model import (
    Action,
    StoreError,
    StoreNotConfigured,
    VersionConflict,
    failure_message,
    not_configured_message,
)
from botmox_api.request_metrics import STORE_NOT_CONFIGURED, STORE_QUERY_FAILED, RequestMetrics, StoreFailure


class ApiError(Exception):
    """Base: an error the client is told about. ``status``/``code`` are fixed per subclass."""

    status: ClassVar[int] = 500
    code: ClassVar[str] = "INTERNAL_ERROR"

    def __init__(
        self,
        message: str,
        *,
        details: object | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.details = details
        self.headers: dict[str, str] = dict(headers or {})
        # Set by ``from_store_error`` on a store failure (not on a version conflict, the client's).
        self.store_failure: StoreFailure | None = None

    @property
    def envelope_code(self) -> str:
        """The envelope code: fixed per class, or per backend for 502/503 store errors."""
        return getattr(self, "instance_code", None) or self.code

    def response(self) -> Response:
        return error_response(self.status, self.envelope_code, self.message, self.details, self.headers)


class BadRequest(ApiError):
    """400: malformed JSON, an invalid body (zod-like details) or an invalid settings path."""

    status, code = 400, "BAD_REQUEST"


class Unauthorized(ApiError):
    """401: no bearer token, or a bad, expired or forged one."""

    status, code = 401, "UNAUTHORIZED"


class Forbidden(ApiError):
    """403: a role is missing, the token has no valid tenant, or a CORS preflight is refused."""

    status, code = 403, "FORBIDDEN"


class NotFound(ApiError):
    """404: unknown route (under ``/api/v1`` only after authentication)."""

    status, code = 404, "NOT_FOUND"


class MethodNotAllowed(ApiError):
    """405: the route does not serve the method; carries the ``Allow`` header."""

    status, code = 405, "METHOD_NOT_ALLOWED"

    def __init__(self, method: str, allow: Sequence[str]) -> None:
        super().__init__(
            f"Method {method} is not allowed here",
            details={"allow": list(allow)},
            headers={"Allow": ", ".join(allow)},
        )


class Conflict(ApiError):
    """409: the agent's state refuses the request (``AGENT_OFFLINE``, ``AGENT_REVOKED``, or
    ``CONFLICT``: a command whose status no longer allows it)."""

    status, code = 409, "CONFLICT"

    def __init__(self, code: str, message: str, *, details: object | None = None) -> None:
        super().__init__(message, details=details)
        self.instance_code = code


class PreconditionFailed(ApiError):
    """412: ``If-Match`` does not match the current version; nothing was written."""

    status, code = 412, "PRECONDITION_FAILED"


class PayloadTooLarge(ApiError):
    """413: the body exceeds ``API_MAX_BODY_BYTES``."""

    status, code = 413, "PAYLOAD_TOO_LARGE"


class UnsupportedMediaType(ApiError):
    """415: a write whose ``Content-Type`` is missing or not JSON."""

    status, code = 415, "UNSUPPORTED_MEDIA_TYPE"


class RateLimited(ApiError):
    """429: the principal (or client address) spent its budget; carries ``Retry-After``."""

    status, code = 429, "RATE_LIMITED"

    def __init__(self, retry_after_s: int) -> None:
        super().__init__(
            "Too many requests, retry later",
            details={"retry_after_s": retry_after_s},
            headers={"Retry-After": str(retry_after_s)},
        )


class QueryFailed(ApiError):
    """502: the store answered with an error or could not be reached. ``code`` is per backend.

    ``cause`` is the store's underlying exception, for the server's log only (never the client's).
    """

    status = 502

    def __init__(
        self, code: str, message: str, *, details: object | None = None, cause: BaseException | None = None
    ) -> None:
        super().__init__(message, details=details)
        self.instance_code = code
        self.cause = cause


class ConfigMissing(ApiError):
    """503: the backend a path needs is not configured; ``details.missing`` names the variables."""

    status = 503

    def __init__(self, code: str, message: str, *, details: object | None = None) -> None:
        super().__init__(message, details=details)
        self.instance_code = code


class NotReady(ApiError):
    """503: ``/health/ready`` while a required dependency is down; ``details`` holds the checks."""

    status, code = 503, "NOT_READY"


class InternalError(ApiError):
    """500: anything unexpected. The message never carries internals."""

    status, code = 500, "INTERNAL_ERROR"


# The code of each client-error status, for statuses the framework raises on its own.
STATUS_CODES: Final = {
    error.status: error.code
    for error in (
        BadRequest,
        Unauthorized,
        Forbidden,
        NotFound,
        MethodNotAllowed,
        PreconditionFailed,
        PayloadTooLarge,
        UnsupportedMediaType,
        RateLimited,
    )
}
INVALID_BODY: Final = "Invalid request body"


def from_store_error(error: StoreError, *, action: Action, subject: str) -> ApiError:
    """Map a store failure: ``action`` is ``read``/``write``, ``subject`` e.g. ``storage policy``.

    Messages follow ``docs/contracts/api-v1.md``: "Failed to read storage policy from Supabase",
    "Failed to write storage policy to Supabase", likewise for RTDB and for settings.
    """
    prefix = error.backend.upper()
    details = dict(error.details) or None
    if isinstance(error, VersionConflict):
        return PreconditionFailed("If-Match does not match the current version", details=details)
    store = subject.replace(" ", "_")
    answer: ApiError
    if isinstance(error, StoreNotConfigured):
        answer = ConfigMissing(
            f"{prefix}_CONFIG_ERROR", not_configured_message(error.backend), details=details
        )
        answer.store_failure = StoreFailure(store, action, STORE_NOT_CONFIGURED)
        return answer
    message = failure_message(action, subject, error.backend)
    answer = QueryFailed(f"{prefix}_QUERY_FAILED", message, details=details, cause=error.__cause__)
    answer.store_failure = StoreFailure(store, action, STORE_QUERY_FAILED)
    return answer


AGENT_OFFLINE: Final = "AGENT_OFFLINE"
AGENT_REVOKED: Final = "AGENT_REVOKED"
_REFUSALS_AS_BAD_REQUEST: Final = frozenset({"BM422", "22023", "23505", "23514"})


def _last_seen(detail: str | None) -> str | None:
    """``last_seen_at=<timestamptz as text, or never>`` (the offline refusal's detail) in RFC 3339."""
    text = (detail or "").removeprefix("last_seen_at=")
    if text in ("", "never"):
        return None
    try:
        return rfc3339(datetime.fromisoformat(text).astimezone(UTC))
    except ValueError:
        return text


def from_agent_refusal(refusal: AgentRefused) -> ApiError:
    """Map a refusal of the agent functions (``docs/contracts/agents-sql.md``) to its envelope error:
    the one home of that mapping. Messages are the API's; a validation refusal carries the
    database's own words (they name the rule, never a value)."""
    state = refusal.sqlstate
    if state == "BM401":
        return Unauthorized(
            "Pairing code refused: unknown, expired or already used",
        )
    if state == "BM403":
        return Unauthorized("Agent credential refused")
    if state == "BM404":
        subject = "Command" if refusal.message.startswith("command") else "Agent"
        return NotFound(f"{subject} not found")
    if state == "BM409":
        return Conflict(
            "CONFLICT", "The command's status does not allow this", details={"transition": refusal.detail}
        )
    if state == "BM410":
        return Conflict(AGENT_REVOKED, "The agent is revoked")
    if state == "BM503":
        return Conflict(
            AGENT_OFFLINE,
            "The agent is not connected; nothing was queued",
            details={"last_seen_at": _last_seen(refusal.detail)},
        )
    if state == "42501":
        return Forbidden("Token has no tenant or subject")
    if state in _REFUSALS_AS_BAD_REQUEST:
        message = refusal.message[:1].upper() + refusal.message[1:]
        return BadRequest(message, details={"formErrors": [message], "fieldErrors": {}})
    return InternalError("Internal server error")


# --- Exception handlers.

_CANONICAL_ORDER: Final = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")

AllowedMethods = Callable[[str], Sequence[str] | None]
"""The methods a path below the API prefix is served with, when the route knows better than
Starlette's ``Allow`` (the settings routes: ``routes.settings.allowed_methods``)."""


def _log_store_failure(logger: FilteringBoundLogger, error: QueryFailed) -> None:
    cause = error.cause
    logger.error(
        "store_failed",
        status=error.status,
        code=error.envelope_code,
        message=error.message,
        reason=error.details.get("reason") if isinstance(error.details, dict) else None,
        cause=f"{type(cause).__name__}: {cause}" if cause is not None else None,
    )


def api_error_response(
    error: ApiError, logger: FilteringBoundLogger, request_metrics: RequestMetrics
) -> Response:
    """The answer to an ``ApiError`` a route raised (a 502 is logged first, a store failure
    counted), whichever way the route was reached: FastAPI's exception handler or the direct
    storage-policy route."""
    if isinstance(error, QueryFailed):
        _log_store_failure(logger, error)
    if error.store_failure is not None:
        request_metrics.store_failed(error.store_failure)
    return error.response()


async def _on_api_error(request: Request, error: Exception) -> Response:
    assert isinstance(error, ApiError)
    state = request.app.state
    return api_error_response(error, state.logger, state.request_metrics)


async def _on_request_validation(_request: Request, error: Exception) -> Response:
    assert isinstance(error, RequestValidationError)
    fields: dict[str, list[str]] = {}
    for item in error.errors():
        location = ".".join(str(part) for part in item.get("loc", ())[1:]) or "request"
        fields.setdefault(location, []).append(str(item.get("msg", "Invalid value")))
    return error_response(400, "BAD_REQUEST", INVALID_BODY, {"formErrors": [], "fieldErrors": fields})


def install_exception_handlers(app: FastAPI, *, api_prefix: str, allowed_methods: AllowedMethods) -> None:
    def is_under_prefix(path: str) -> bool:
        return path == api_prefix or path.startswith(api_prefix + "/")

    def allow_of(path: str, allow_header: str | None) -> Sequence[str]:
        known = allowed_methods(path[len(api_prefix) :]) if is_under_prefix(path) else None
        if known is not None:
            return known
        methods = {m.strip().upper() for m in (allow_header or "").split(",") if m.strip()}
        return tuple(sorted(methods, key=lambda m: (*_CANONICAL_ORDER, m).index(m)))

    async def on_http_exception(request: Request, error: Exception) -> Response:
        assert isinstance(error, StarletteHTTPException)
        path = request.url.path
        if error.status_code == 404:
            message = (
                f"Unknown API v1 endpoint: {request.method} {path}" if is_under_prefix(path) else "Not found"
            )
            return error_response(404, "NOT_FOUND", message)
        if error.status_code == 405:
            allow = allow_of(path, (error.headers or {}).get("Allow"))
            return MethodNotAllowed(request.method, allow).response()
        fallback = "INTERNAL_ERROR" if error.status_code >= 500 else "BAD_REQUEST"
        code = STATUS_CODES.get(error.status_code, fallback)
        message = (
            error.detail if isinstance(error.detail, str) and error.status_code < 500 else "Request failed"
        )
        return error_response(error.status_code, code, message, headers=error.headers)

    app.add_exception_handler(ApiError, _on_api_error)
    app.add_exception_handler(StarletteHTTPException, on_http_exception)
    app.add_exception_handler(RequestValidationError, _on_request_validation)
