"""Every error the framework or a route raises becomes an envelope; nothing else reaches a client.

``ApiError`` → its code/status; Starlette's ``HTTPException`` (unknown route 404, wrong method 405)
→ ``NOT_FOUND``/``METHOD_NOT_ALLOWED`` with ``Allow``; FastAPI's request validation (422) → 400.
Unexpected exceptions are caught by the request gate (500 ``INTERNAL_ERROR``). A 502 is logged here
with its cause (the client only gets the backend's message and reason): the line carries the request's
correlation id, and the logger redacts credentials in it.
"""

from __future__ import annotations

from typing import Final

from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import Request
from starlette.responses import Response

from botmox_api.envelope import error_response
from botmox_api.errors import ApiError, MethodNotAllowed, QueryFailed, error_code
from botmox_api.gate import API_PREFIX, SETTINGS_PATH
from botmox_api.routes.settings import PATH_METHODS, WHOLE_TREE_METHODS
from botmox_api.settings_path import is_whole_tree
from botmox_api.validation import INVALID_BODY

_CANONICAL_ORDER: Final = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")
_STATUS_CODES: Final = {
    400: "BAD_REQUEST",
    401: "UNAUTHORIZED",
    403: "FORBIDDEN",
    404: "NOT_FOUND",
    405: "METHOD_NOT_ALLOWED",
    412: "PRECONDITION_FAILED",
    413: "PAYLOAD_TOO_LARGE",
    415: "UNSUPPORTED_MEDIA_TYPE",
    429: "RATE_LIMITED",
}


def api_error_response(error: ApiError) -> Response:
    return error_response(error.status, error_code(error), error.message, error.details, error.headers)


def _allowed_methods(path: str, allow_header: str | None) -> tuple[str, ...]:
    if path == SETTINGS_PATH:
        return WHOLE_TREE_METHODS
    if path.startswith(SETTINGS_PATH + "/"):
        rest = path[len(SETTINGS_PATH) + 1 :]
        return WHOLE_TREE_METHODS if is_whole_tree(rest) else PATH_METHODS
    methods = {m.strip().upper() for m in (allow_header or "").split(",") if m.strip()}
    return tuple(sorted(methods, key=lambda m: (*_CANONICAL_ORDER, m).index(m)))


def _log_store_failure(request: Request, error: QueryFailed) -> None:
    cause = error.cause
    request.app.state.logger.error(
        "store_failed",
        status=error.status,
        code=error_code(error),
        message=error.message,
        reason=error.details.get("reason") if isinstance(error.details, dict) else None,
        cause=f"{type(cause).__name__}: {cause}" if cause is not None else None,
    )


async def _on_api_error(request: Request, error: Exception) -> Response:
    assert isinstance(error, ApiError)
    if isinstance(error, QueryFailed):
        _log_store_failure(request, error)
    return api_error_response(error)


async def _on_http_exception(request: Request, error: Exception) -> Response:
    assert isinstance(error, StarletteHTTPException)
    path = request.url.path
    if error.status_code == 404:
        prefix_match = path == API_PREFIX or path.startswith(API_PREFIX + "/")
        message = f"Unknown API v1 endpoint: {request.method} {path}" if prefix_match else "Not found"
        return error_response(404, "NOT_FOUND", message)
    if error.status_code == 405:
        allow = _allowed_methods(path, (error.headers or {}).get("Allow"))
        return api_error_response(MethodNotAllowed(request.method, allow))
    fallback = "INTERNAL_ERROR" if error.status_code >= 500 else "BAD_REQUEST"
    code = _STATUS_CODES.get(error.status_code, fallback)
    message = error.detail if isinstance(error.detail, str) and error.status_code < 500 else "Request failed"
    return error_response(error.status_code, code, message, headers=error.headers)


async def _on_request_validation(_request: Request, error: Exception) -> Response:
    assert isinstance(error, RequestValidationError)
    fields: dict[str, list[str]] = {}
    for item in error.errors():
        location = ".".join(str(part) for part in item.get("loc", ())[1:]) or "request"
        fields.setdefault(location, []).append(str(item.get("msg", "Invalid value")))
    return error_response(400, "BAD_REQUEST", INVALID_BODY, {"formErrors": [], "fieldErrors": fields})


def install_exception_handlers(app: FastAPI) -> None:
    app.add_exception_handler(ApiError, _on_api_error)
    app.add_exception_handler(StarletteHTTPException, _on_http_exception)
    app.add_exception_handler(RequestValidationError, _on_request_validation)
