"""The response envelope of ``docs/contracts/api-v1.md``, built as bytes once per response (no model
validation on the hot path): ``{"success": true, "data": ...}`` or ``{"success": false, "error": {...}}``."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Final

from starlette.responses import Response

JSON_MEDIA_TYPE: Final = "application/json"

# Compact separators: smaller bodies, and the same bytes whatever the backend.
_encoder = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False)


def success_body(data: object, meta: object | None = None) -> bytes:
    body: dict[str, object] = {"success": True, "data": data}
    if meta is not None:
        body["meta"] = meta
    return _encoder.encode(body).encode("utf-8")


def error_body(code: str, message: str, details: object | None = None) -> bytes:
    error: dict[str, object] = {"code": code, "message": message}
    if details is not None:
        error["details"] = details
    return _encoder.encode({"success": False, "error": error}).encode("utf-8")


def success_response(
    data: object, *, status: int = 200, headers: Mapping[str, str] | None = None
) -> Response:
    return Response(success_body(data), status_code=status, headers=headers, media_type=JSON_MEDIA_TYPE)


def error_response(
    status: int,
    code: str,
    message: str,
    details: object | None = None,
    headers: Mapping[str, str] | None = None,
) -> Response:
    return Response(
        error_body(code, message, details), status_code=status, headers=headers, media_type=JSON_MEDIA_TYPE
    )
