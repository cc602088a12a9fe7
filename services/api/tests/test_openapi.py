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
        "/api/v1/agents",
        "/api/v1/agents/pairings",
        "/api/v1/agents/register",
        "/api/v1/agents/{agent_id}/revoke",
        "/api/v1/agents/{agent_id}/commands",
        "/api/v1/agents/{agent_id}/commands/{command_id}",
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
            public = path.startswith("/api/v1/health") or path == "/api/v1/agents/register"
            assert ("security" in operation) is (not public)


async def test_openapi_declares_the_agent_operations(fake_api: httpx.AsyncClient) -> None:
    """Every agent operation declares 503 (agents need Supabase over SQL whatever DATA_BACKEND says),
    the command operation its 409 (AGENT_OFFLINE), cancel its 404 and 409, and the register body its
    schema. The agents' WebSocket is no HTTP operation and stays out of the document."""
    document = (await fake_api.get("/api/v1/openapi.json")).json()
    paths = document["paths"]
    agent_operations = [
        operation
        for path, operations in paths.items()
        if path.startswith("/api/v1/agents")
        for operation in operations.values()
    ]
    assert len(agent_operations) == 7
    assert "/api/v1/agents/ws" not in paths
    cancel = paths["/api/v1/agents/{agent_id}/commands/{command_id}/cancel"]["post"]
    assert {"404", "409"} <= set(cancel["responses"])
    for operation in agent_operations:
        assert {"429", "500", "502", "503"} <= set(operation["responses"])
    enqueue = paths["/api/v1/agents/{agent_id}/commands"]["post"]
    assert {"400", "404", "409", "413", "415"} <= set(enqueue["responses"])
    assert "AGENT_OFFLINE" in enqueue["responses"]["409"]["description"]
    register = paths["/api/v1/agents/register"]["post"]
    assert register["requestBody"]["content"]["application/json"]["schema"]["$ref"].endswith(
        "AgentRegistration"
    )
    assert {"400", "401", "413", "415"} <= set(register["responses"])
    schemas = document["components"]["schemas"]
    assert schemas["AgentCommandRequest"]["required"] == ["kind"]
    assert schemas["AgentRegistration"]["required"] == ["code", "name", "version"]
