"""The OpenAPI document at ``/api/v1/openapi.json``: FastAPI's, plus what it cannot infer.

Adds the bearer security scheme (on every operation but health), the ``StoragePolicyWrite`` schema
and the settings body and path schemas (precise enough that every value they admit is accepted,
which schemathesis checks), and drops FastAPI's default 422 responses, which this API
never sends (invalid input is a 400 envelope).
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from botmox_api.openapi_docs import EXTRA_SCHEMAS, SETTINGS_PATH_SCHEMA
from botmox_api.schemas import STORAGE_POLICY_WRITE_SCHEMA

_SECURITY_SCHEME = {
    "bearerAuth": {
        "type": "http",
        "scheme": "bearer",
        "bearerFormat": "JWT",
        "description": "Supabase access token, Firebase ID token or internal token",
    }
}


def build_openapi(app: FastAPI) -> dict[str, Any]:
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
            if not path.startswith("/api/v1/health"):
                operation["security"] = [{"bearerAuth": []}]
    app.openapi_schema = document
    return document
