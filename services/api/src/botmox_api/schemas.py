"""Pydantic models that describe the wire format in the OpenAPI document.

Handlers build response bytes directly (``envelope.py``); these models exist so that
``/api/v1/openapi.json`` states the envelope, every error and the storage-policy document exactly,
for clients and for schemathesis.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, JsonValue

from botmox_api.model import DataBackend


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
    tenant_id: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,62}$")


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
