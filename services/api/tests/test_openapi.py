"""The OpenAPI document: where it is, and that it states the envelope, errors and schemas."""

from __future__ import annotations

import httpx


async def test_openapi_document(fake_api: httpx.AsyncClient) -> None:
    response = await fake_api.get("/api/v1/openapi.json")
    assert response.status_code == 200
    document = response.json()
    paths = document["paths"]
    assert set(paths) >= {
        "/api/v1/health",
        "/api/v1/health/live",
        "/api/v1/health/ready",
        "/api/v1/auth/verify",
        "/api/v1/settings",
        "/api/v1/settings/storage_policy",
        "/api/v1/settings/{settings_path}",
    }
    schemas = document["components"]["schemas"]
    assert {"ErrorEnvelope", "StoragePolicyWrite", "StoragePolicyDocument"} <= set(schemas)
    assert schemas["StoragePolicyDocument"]["properties"]["operational"]["enum"] == ["local", "cloud"]
    put = paths["/api/v1/settings/storage_policy"]["put"]
    assert put["requestBody"]["content"]["application/json"]["schema"]["$ref"].endswith("StoragePolicyWrite")
    assert {"400", "401", "403", "412", "413", "415", "429", "502", "503"} <= set(put["responses"])
    assert "ETag" in put["responses"]["200"]["headers"]
    for path, operations in paths.items():
        for operation in operations.values():
            assert "422" not in operation["responses"]
            assert ("security" in operation) is (not path.startswith("/api/v1/health"))
