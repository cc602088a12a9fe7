"""The OpenAPI document at ``/api/v1/openapi.json``: the wire format's models, the response and
request fragments the routes declare, and what FastAPI cannot infer.

Handlers build response bytes directly (``envelope.py``); the pydantic models here exist so that the
document states the envelope, every error and the storage-policy document exactly, for clients and
for schemathesis. ``build_openapi`` adds the bearer security scheme (on every operation but health),
the ``StoragePolicyWrite`` schema and the settings body and path schemas (precise enough that every
value they admit is accepted, which schemathesis checks; the path pattern is the parser's own,
``settings_path.SETTINGS_PATH_PATTERN``), and drops FastAPI's default 422 responses, which this API
never sends (invalid input is a 400 envelope).
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any, Final, Literal

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel, ConfigDict, Field, JsonValue

from botmox_api.agent_bodies import (
    MAX_CAPABILITIES,
    MAX_CODE_CHARS,
    MAX_KIND_CHARS,
    MAX_NAME_CHARS,
    MAX_VERSION_CHARS,
)
from botmox_api.agents import MAX_COMMAND_DEADLINE_S
from botmox_api.errors import STATUS_CODES, InternalError
from botmox_api.logs import CORRELATION_HEADER
from botmox_api.model import MAX_KEY_BYTES, RTDB_KEY_FORBIDDEN, TENANT_ID_PATTERN, DataBackend
from botmox_api.settings_path import MAX_PATH_BYTES, MAX_SEGMENTS, SETTINGS_PATH_PATTERN

# --- The wire format.


class ErrorInfo(BaseModel):
    code: str = Field(pattern=r"^[A-Z][A-Z0-9_]*$", examples=["BAD_REQUEST"])
    message: str
    details: JsonValue = Field(default=None, description="Optional structured details; absent when none.")


class ErrorEnvelope(BaseModel):
    model_config = ConfigDict(title="ErrorEnvelope")
    success: Literal[False]
    error: ErrorInfo


class ValidationDetails(BaseModel):
    """zod's ``flatten()``: form-level messages and messages per dotted field path."""

    formErrors: list[str]
    fieldErrors: dict[str, list[str]]


class HealthInfo(BaseModel):
    service: Literal["bot-mox-api-v1"]
    version: str
    timestamp: str = Field(description="ISO-8601, UTC")
    data_backend: DataBackend
    supabase_configured: bool
    supabase_ready: bool
    rtdb_configured: bool
    rtdb_ready: bool


class LiveInfo(BaseModel):
    service: Literal["bot-mox-api-v1"]
    timestamp: str
    status: Literal["live"]


class DependencyCheck(BaseModel):
    required: bool
    ready: bool
    reason: str | None = Field(default=None, description="Present when not ready.")


class ReadinessChecks(BaseModel):
    supabase: DependencyCheck
    rtdb: DependencyCheck


class ReadyInfo(BaseModel):
    status: Literal["ready", "not_ready"]
    ready: bool
    checks: ReadinessChecks


class PrincipalInfo(BaseModel):
    uid: str
    email: str | None
    roles: list[Literal["api", "admin", "infra"]]
    source: Literal["internal", "supabase", "firebase"]
    tenant_id: str = Field(pattern=TENANT_ID_PATTERN.pattern)


class SyncSettings(BaseModel):
    enabled: bool


class StoragePolicyDocument(BaseModel):
    model_config = ConfigDict(extra="forbid")
    secrets: Literal["local-only"]
    operational: Literal["local", "cloud"]
    sync: SyncSettings
    updated_at: int = Field(description="Epoch milliseconds, set by the server.")
    updated_by: str = Field(description="uid of the writer.")


# Written by hand rather than derived from a model: pydantic renders optional fields as nullable,
# and a null is exactly what this API refuses for them.
STORAGE_POLICY_WRITE_SCHEMA: dict[str, object] = {
    "title": "StoragePolicyWrite",
    "description": "At least one of `operational`, `sync`, `secrets`; `updated_at`, `updated_by` and "
    "other keys are ignored.",
    "type": "object",
    "properties": {
        "operational": {"type": "string", "enum": ["local", "cloud"]},
        "sync": {
            "type": "object",
            "properties": {"enabled": {"type": "boolean"}},
            "required": ["enabled"],
        },
        "secrets": {
            "type": "string",
            "enum": ["local-only"],
            "description": "Secrets never leave the customer machine: only `local-only`.",
        },
        "updated_at": {"description": "Ignored; the server sets it."},
        "updated_by": {"description": "Ignored; the server sets it."},
    },
    "anyOf": [{"required": ["operational"]}, {"required": ["sync"]}, {"required": ["secrets"]}],
}


class HealthEnvelope(BaseModel):
    success: Literal[True]
    data: HealthInfo


class LiveEnvelope(BaseModel):
    success: Literal[True]
    data: LiveInfo


class ReadyEnvelope(BaseModel):
    success: Literal[True]
    data: ReadyInfo


class PrincipalEnvelope(BaseModel):
    success: Literal[True]
    data: PrincipalInfo


class SettingsTreeEnvelope(BaseModel):
    success: Literal[True]
    data: dict[str, JsonValue] = Field(description="The caller's whole settings tree, `{}` when empty.")


class SettingsNodeEnvelope(BaseModel):
    success: Literal[True]
    data: JsonValue = Field(description="The node at the path (after a write: the node afterwards).")


class StoragePolicyEnvelope(BaseModel):
    success: Literal[True]
    data: StoragePolicyDocument | None = Field(description="`null` when nothing is stored.")


class PairingInfo(BaseModel):
    code: str = Field(description="The one-time pairing code; shown once, never stored (only its SHA-256).")
    expires_at: str = Field(description="RFC 3339; 10 minutes after creation.")


class RegistrationInfo(BaseModel):
    agent_id: str
    tenant_id: str
    credential: str = Field(description="The agent's credential; shown once, only its SHA-256 is stored.")
    name: str
    version: str
    capabilities: list[str]
    created_at: str


class AgentSummary(BaseModel):
    id: str
    name: str
    version: str
    capabilities: list[str]
    created_by: str
    created_at: str
    last_seen_at: str | None
    revoked_at: str | None
    online: bool = Field(description="Held by a tunnel and seen within the heartbeat timeout, not revoked.")


class RevocationInfo(BaseModel):
    agent_id: str
    revoked_at: str
    revoked_by: str
    cancelled_commands: int = Field(description="Open commands this revocation cancelled (0 when repeated).")


class CommandError(BaseModel):
    code: str
    message: str | None


class CommandInfo(BaseModel):
    id: str
    agent_id: str
    kind: str
    params: dict[str, JsonValue]
    status: Literal["queued", "sent", "acked", "running", "succeeded", "failed", "expired", "cancelled"]
    deadline: str
    deliveries: int
    progress: JsonValue
    result: JsonValue = Field(description="The agent's data when `succeeded`, else `null`.")
    error: CommandError | None
    created_by: str
    created_at: str
    finished_at: str | None


class PairingEnvelope(BaseModel):
    success: Literal[True]
    data: PairingInfo


class RegistrationEnvelope(BaseModel):
    success: Literal[True]
    data: RegistrationInfo


class AgentListEnvelope(BaseModel):
    success: Literal[True]
    data: list[AgentSummary]


class RevocationEnvelope(BaseModel):
    success: Literal[True]
    data: RevocationInfo


class CommandEnvelope(BaseModel):
    success: Literal[True]
    data: CommandInfo


# --- Fragments the routes declare.

_HEADER_CORRELATION: Final = {
    CORRELATION_HEADER: {
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


_CLIENT_ERRORS: Final = {
    400: "malformed JSON, invalid body (formErrors/fieldErrors) or invalid settings path",
    401: "no bearer token, or a bad, expired or forged one",
    403: "role missing, token without a valid tenant, or CORS preflight from an unlisted origin",
    404: "unknown route",
    405: "the route does not serve the method",
    412: "If-Match does not match the current version",
    413: "body over API_MAX_BODY_BYTES",
    415: "write without a JSON Content-Type",
    429: "too many requests in the window",
}
ERROR_DESCRIPTIONS: Final[dict[int, str]] = {
    **{status: f"{STATUS_CODES[status]}: {text}" for status, text in _CLIENT_ERRORS.items()},
    409: "AGENT_OFFLINE: the agent is not connected (nothing queued) / AGENT_REVOKED: the agent is revoked"
    " / CONFLICT: the command's status does not allow this",
    500: f"{InternalError.code}: anything unexpected",
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


# What RTDB can store (``request_body.py``): a key is 1..768 bytes without ". # $ [ ] /" or control
# characters. Lengths are in characters (the API counts UTF-8 bytes), so a fuzzer that fills them
# with multi-byte characters could overshoot; in practice it does not.
_KEY_PATTERN: Final = rf"^[^{RTDB_KEY_FORBIDDEN}]{{1,{MAX_KEY_BYTES}}}$"

SETTINGS_PATH_SCHEMA: Final = {
    "type": "string",
    "description": f"Segments free of `. # $ [ ]` and control characters, at most {MAX_SEGMENTS} of them "
    f"(after one leading `settings`) and {MAX_PATH_BYTES} bytes; `storage_policy` and the whole tree have "
    "their own operations.",
    "pattern": SETTINGS_PATH_PATTERN,
    "maxLength": MAX_PATH_BYTES,
}

EXTRA_SCHEMAS: Final[dict[str, dict[str, Any]]] = {
    "AgentRegistration": {
        "type": "object",
        "required": ["code", "name", "version"],
        "properties": {
            "code": {"type": "string", "minLength": 1, "maxLength": MAX_CODE_CHARS, "pattern": r"\S"},
            "name": {"type": "string", "minLength": 1, "maxLength": MAX_NAME_CHARS, "pattern": r"\S"},
            "version": {"type": "string", "minLength": 1, "maxLength": MAX_VERSION_CHARS, "pattern": r"\S"},
            "capabilities": {
                "description": "Command kinds the agent executes (allowlist: docs/contracts/agents-sql.md).",
                "type": "array",
                "maxItems": MAX_CAPABILITIES,
                "uniqueItems": True,
                "items": {"type": "string", "minLength": 1, "maxLength": MAX_KIND_CHARS},
            },
        },
    },
    "AgentCommandRequest": {
        "type": "object",
        "required": ["kind"],
        "properties": {
            "kind": {"type": "string", "minLength": 1, "maxLength": MAX_KIND_CHARS, "pattern": r"\S"},
            "params": {"type": "object", "description": "A JSON object of at most 16 KiB."},
            "deadline_s": {"type": "integer", "minimum": 1, "maximum": MAX_COMMAND_DEADLINE_S},
        },
    },
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


# --- The document.

_SECURITY_SCHEME = {
    "bearerAuth": {
        "type": "http",
        "scheme": "bearer",
        "bearerFormat": "JWT",
        "description": "Supabase access token, Firebase ID token or internal token",
    }
}


def build_openapi(app: FastAPI, *, unauthenticated_paths: Collection[str]) -> dict[str, Any]:
    """Built once per app; operations under ``unauthenticated_paths`` (health) get no security."""
    if app.openapi_schema is not None:
        return app.openapi_schema
    document = get_openapi(
        title=app.title,
        version=app.version,
        description=app.description,
        routes=app.routes,
        tags=app.openapi_tags,
    )
    components = document.setdefault("components", {})
    schemas = components.setdefault("schemas", {})
    schemas["StoragePolicyWrite"] = STORAGE_POLICY_WRITE_SCHEMA
    schemas.update(EXTRA_SCHEMAS)
    for name in ("HTTPValidationError", "ValidationError"):
        schemas.pop(name, None)
    components["securitySchemes"] = _SECURITY_SCHEME
    for path, operations in document.get("paths", {}).items():
        for operation in operations.values():
            operation.get("responses", {}).pop("422", None)
            for parameter in operation.get("parameters", []):
                if parameter.get("name") == "settings_path":
                    parameter["schema"] = SETTINGS_PATH_SCHEMA
            if path not in unauthenticated_paths:
                operation["security"] = [{"bearerAuth": []}]
    app.openapi_schema = document
    return document
