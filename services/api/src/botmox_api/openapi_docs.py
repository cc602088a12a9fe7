"""OpenAPI fragments shared by the routes: error responses, headers, request bodies."""

from __future__ import annotations

from typing import Any, Final

from botmox_api.model import MAX_KEY_BYTES
from botmox_api.schemas import ErrorEnvelope
from botmox_api.settings_path import MAX_PATH_BYTES, MAX_SEGMENTS

_HEADER_CORRELATION: Final = {
    "x-correlation-id": {
        "description": "The request's correlation id (echoed or generated).",
        "schema": {"type": "string"},
    },
}


def _error(description: str, headers: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "model": ErrorEnvelope,
        "description": description,
        "headers": {**_HEADER_CORRELATION, **(headers or {})},
    }


ERROR_DESCRIPTIONS: Final[dict[int, str]] = {
    400: "BAD_REQUEST: malformed JSON, invalid body (formErrors/fieldErrors) or invalid settings path",
    401: "UNAUTHORIZED: no bearer token, or a bad, expired or forged one",
    403: "FORBIDDEN: role missing, token without a valid tenant, or CORS preflight from an unlisted origin",
    404: "NOT_FOUND: unknown route",
    405: "METHOD_NOT_ALLOWED: the route does not serve the method",
    412: "PRECONDITION_FAILED: If-Match does not match the current version",
    413: "PAYLOAD_TOO_LARGE: body over API_MAX_BODY_BYTES",
    415: "UNSUPPORTED_MEDIA_TYPE: write without a JSON Content-Type",
    429: "RATE_LIMITED: too many requests in the window",
    500: "INTERNAL_ERROR: anything unexpected",
    502: "SUPABASE_QUERY_FAILED / RTDB_QUERY_FAILED: the store failed or could not be reached",
    503: "SUPABASE_CONFIG_ERROR / RTDB_CONFIG_ERROR: the backend the path needs is not configured",
}

_SPECIAL_HEADERS: Final[dict[int, dict[str, Any]]] = {
    405: {"Allow": {"description": "Methods the route serves.", "schema": {"type": "string"}}},
    429: {"Retry-After": {"description": "Seconds to wait.", "schema": {"type": "integer", "minimum": 1}}},
}


def errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    return {status: _error(ERROR_DESCRIPTIONS[status], _SPECIAL_HEADERS.get(status)) for status in statuses}


AUTHENTICATED_ERRORS: Final = (401, 403, 429, 500)
READ_ERRORS: Final = (*AUTHENTICATED_ERRORS, 400, 405, 502, 503)
WRITE_ERRORS: Final = (*READ_ERRORS, 413, 415)

ETAG_HEADER: Final = {
    "ETag": {
        "description": 'The document version, `"<version>"`; absent when nothing is stored.',
        "schema": {"type": "string", "pattern": '^"[0-9]+"$'},
    },
    **_HEADER_CORRELATION,
}

IF_MATCH_PARAMETER: Final = {
    "name": "If-Match",
    "in": "header",
    "required": False,
    "description": 'ETags (`"<version>"`, comma-separated) or `*`; compared strongly, character by character '
    "(weak tags never match, an empty header matches nothing).",
    "schema": {"type": "string", "pattern": r'^\s*(\*|(W/)?"[^"]*"(\s*,\s*(W/)?"[^"]*")*)?\s*$'},
}

GENERIC_WRITE_BODY: Final = {
    "requestBody": {
        "required": True,
        "description": "Any JSON value but an empty object. An object is merged one level deep "
        "(a null child deletes it); any other value replaces the node.",
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/SettingsWriteBody"}}},
    }
}


def storage_policy_write_body() -> dict[str, Any]:
    return {
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/StoragePolicyWrite"}}},
        },
        "parameters": [IF_MATCH_PARAMETER],
    }


# What RTDB can store (``settings_body.py``): a key is 1..768 bytes  without
# ". # $ [ ] /" or control characters. Lengths are in characters (the API counts UTF-8 bytes), so a
# fuzzer that fills them with multi-byte characters could overshoot; in practice it does not.
_KEY_PATTERN: Final = rf"^[^.#$\[\]/\x00-\x1f\x7f]{{1,{MAX_KEY_BYTES}}}$"
_SEGMENT: Final = r"[^.#$\[\]/?\x00-\x1f\x7f]+"
# Mirrors settings_path.py: the whole path is trimmed and stripped of "/" (so a blank path or a bare
# "settings" is the whole tree, which has its own operation, as does storage_policy).
_WS: Final = r"[\t\n\v\f\r \u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000\ufeff]*"
_NOT_WHOLE_TREE: Final = rf"(?!{_WS}/*(settings/*)?{_WS}$)"
_NOT_STORAGE_POLICY: Final = rf"(?!{_WS}/*(settings/+)?storage_policy(/|{_WS}$))"
_SEGMENTS: Final = rf"{_SEGMENT}(/{_SEGMENT}){{0,{MAX_SEGMENTS - 1}}}"

SETTINGS_PATH_SCHEMA: Final = {
    "type": "string",
    "description": f"Segments free of `. # $ [ ] ?` and control characters, at most {MAX_SEGMENTS} of them "
    f"and {MAX_PATH_BYTES} bytes; `storage_policy` and the whole tree have their own operations.",
    "pattern": rf"^{_NOT_WHOLE_TREE}{_NOT_STORAGE_POLICY}{_WS}/*{_SEGMENTS}/*{_WS}$",
    "maxLength": MAX_PATH_BYTES,
}

EXTRA_SCHEMAS: Final[dict[str, dict[str, Any]]] = {
    "SettingsValue": {
        "description": "A JSON value storable in RTDB.",
        "anyOf": [
            {
                "type": "object",
                "propertyNames": {"pattern": _KEY_PATTERN},
                "additionalProperties": {"$ref": "#/components/schemas/SettingsValue"},
            },
            {"type": "array", "items": {"$ref": "#/components/schemas/SettingsValue"}},
            {"type": ["string", "number", "boolean", "null"]},
        ],
    },
    "SettingsWriteBody": {
        "description": "Any storable JSON value but an empty object.",
        "anyOf": [
            {
                "type": "object",
                "minProperties": 1,
                "propertyNames": {"pattern": _KEY_PATTERN},
                "additionalProperties": {"$ref": "#/components/schemas/SettingsValue"},
            },
            {"type": "array", "items": {"$ref": "#/components/schemas/SettingsValue"}},
            {"type": ["string", "number", "boolean", "null"]},
        ],
    },
}
