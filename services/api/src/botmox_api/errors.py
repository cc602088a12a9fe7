"""The API's error hierarchy: each ``ApiError`` subclass is one envelope ``code`` and HTTP status.

Routes and the request gate raise these; one exception handler turns any of them into
``{"success": false, "error": {"code", "message", "details"?}}``. Store failures
(``stores.protocols.StoreError``) are mapped here too, so the route code never builds an error body.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import ClassVar

from botmox_api.model import (
    Action,
    StoreError,
    StoreNotConfigured,
    VersionConflict,
    failure_message,
    not_configured_message,
)


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


def error_code(error: ApiError) -> str:
    """The envelope code: fixed per class, or per backend for 502/503 store errors."""
    return getattr(error, "instance_code", None) or error.code


def from_store_error(error: StoreError, *, action: Action, subject: str) -> ApiError:
    """Map a store failure: ``action`` is ``read``/``write``, ``subject`` e.g. ``storage policy``.

    Messages follow ``docs/contracts/api-v1.md``: "Failed to read storage policy from Supabase",
    "Failed to write storage policy to Supabase", likewise for RTDB and for settings.
    """
    prefix = error.backend.upper()
    details = dict(error.details) or None
    if isinstance(error, VersionConflict):
        return PreconditionFailed("If-Match does not match the current version", details=details)
    if isinstance(error, StoreNotConfigured):
        return ConfigMissing(f"{prefix}_CONFIG_ERROR", not_configured_message(error.backend), details=details)
    message = failure_message(action, subject, error.backend)
    return QueryFailed(f"{prefix}_QUERY_FAILED", message, details=details, cause=error.__cause__)
