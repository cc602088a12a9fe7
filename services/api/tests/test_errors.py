"""The envelope for every outcome, and the order of checks (``docs/contracts/api-v1.md``)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Final

import httpx
import pytest
from api_fakes import memory_store_set
from api_support import API_TOKEN, bearer, client_for, error_code, make_settings, user
from fastapi import FastAPI

from botmox_api.model import StoragePolicy, StoreQueryFailed

A = user("tenant-a")
POLICY = "/api/v1/settings/storage_policy"
JSON = {"Content-Type": "application/json"}


async def test_unknown_route_is_404_after_authentication(fake_api: httpx.AsyncClient) -> None:
    assert (await fake_api.get("/api/v1/nope")).status_code == 401
    response = await fake_api.get("/api/v1/nope", headers=A)
    assert response.status_code == 404
    assert response.json() == {
        "success": False,
        "error": {"code": "NOT_FOUND", "message": "Unknown API v1 endpoint: GET /api/v1/nope"},
    }
    assert (await fake_api.get("/api/v1/health/nope")).status_code == 401  # only the 3 health paths are open
    outside = await fake_api.get("/elsewhere")
    assert outside.status_code == 404
    assert error_code(outside) == "NOT_FOUND"


@pytest.mark.parametrize(
    ("method", "path", "allow"),
    [
        ("POST", "/api/v1/settings/alerts", "GET, PUT, PATCH"),
        ("DELETE", POLICY, "GET, PUT, PATCH"),
        ("POST", "/api/v1/settings", "GET"),
        ("PATCH", "/api/v1/settings/settings", "GET"),
        ("POST", "/api/v1/auth/verify", "GET"),
    ],
)
async def test_method_not_allowed(fake_api: httpx.AsyncClient, method: str, path: str, allow: str) -> None:
    response = await fake_api.request(method, path, headers=A)
    assert response.status_code == 405
    assert error_code(response) == "METHOD_NOT_ALLOWED"
    assert response.headers["allow"] == allow


async def test_correlation_id_echoed_or_generated(fake_api: httpx.AsyncClient) -> None:
    given = await fake_api.get("/api/v1/health/live", headers={"x-correlation-id": "abc-123"})
    assert given.headers["x-correlation-id"] == "abc-123"
    generated = await fake_api.get("/api/v1/nope")
    assert uuid.UUID(generated.headers["x-correlation-id"])


async def test_order_of_checks(fake_api: httpx.AsyncClient) -> None:
    """Each request fails two checks; the earlier one must answer."""
    big = b"x" * 70_000
    cases: list[tuple[str, str, dict[str, str], bytes, int]] = [
        ("PUT", "/api/v1/nope", {}, b"{", 401),  # auth before route
        ("PUT", "/api/v1/settings/a.b", {"Content-Type": "text/plain"}, big, 401),
        ("POST", "/api/v1/settings/a.b", A, big, 405),  # method before path
        ("PUT", "/api/v1/settings/a.b", {**A, "Content-Type": "text/plain"}, big, 400),  # path before size
        ("PUT", POLICY, {**A, "Content-Type": "text/plain"}, big, 413),  # size before media type
        ("PUT", POLICY, {**A, "Content-Type": "text/plain"}, b"{", 415),  # media type before JSON
        ("PUT", POLICY, {**A, **JSON}, b"{", 400),
        ("PUT", POLICY, {**A, **JSON, "If-Match": '"7"'}, b'{"operational": 1}', 400),  # body before 412
        ("PUT", POLICY, {**A, **JSON, "If-Match": '"7"'}, b'{"operational": "local"}', 412),
    ]
    for method, path, headers, body, status in cases:
        response = await fake_api.request(method, path, headers=headers, content=body)
        assert response.status_code == status, (method, path, headers, response.text)
        assert response.json()["success"] is False


async def test_streamed_body_over_limit_is_413(fake_api: httpx.AsyncClient) -> None:
    async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: the size is only known while streaming
        for _ in range(20):
            yield b"x" * 4096

    response = await fake_api.put(POLICY, headers={**A, **JSON}, content=chunks())
    assert response.status_code == 413
    assert error_code(response) == "PAYLOAD_TOO_LARGE"


# Each of these would be answered 412 by a configured store holding nothing (the control below).
UNMATCHABLE_IF_MATCH = ('"1"', '"01"', "", '"9999999999999999999"', 'W/"1"')
# Setting these to None leaves the backend the mode routes storage_policy to unconfigured.
_UNCONFIGURED: Final = {
    "rtdb": {
        "firebase_database_url": None,
        "firebase_project_id": None,
        "firebase_database_emulator_host": None,
    },
    "supabase": {"supabase_db_url": None, "supabase_url": None},
}
_CONFIG_ERROR: Final = {
    "rtdb": ("RTDB_CONFIG_ERROR", "RTDB is not configured", "FIREBASE_DATABASE_URL"),
    "supabase": ("SUPABASE_CONFIG_ERROR", "Supabase is not configured", "SUPABASE_DB_URL"),
}


@pytest.mark.integration
async def test_config_error_comes_before_if_match(
    api: httpx.AsyncClient, api_mode: str, real_settings_overrides: dict[str, object]
) -> None:
    """On the real stores: the If-Match that a configured store refuses (412) gets the 503 of an
    unconfigured one, and the paths routed to the configured backend keep working."""
    for if_match in UNMATCHABLE_IF_MATCH:
        control = await api.put(POLICY, headers={**A, "If-Match": if_match}, json={"operational": "local"})
        assert control.status_code == 412, (if_match, control.text)
    code, message, variable = _CONFIG_ERROR[api_mode]
    settings = make_settings(**(real_settings_overrides | _UNCONFIGURED[api_mode]))
    async with client_for(settings) as client:
        for if_match in UNMATCHABLE_IF_MATCH:
            response = await client.put(
                POLICY, headers={**A, "If-Match": if_match}, json={"operational": "local"}
            )
            assert response.status_code == 503, (if_match, response.text)
            error = response.json()["error"]
            assert (error["code"], error["message"]) == (code, message)
            assert variable in error["details"]["missing"]
        if api_mode == "supabase":  # generic paths live in RTDB, which is configured
            assert (await client.put("/api/v1/settings/alerts", headers=A, json={"x": 1})).status_code == 200


async def test_store_errors_are_502_naming_the_operation() -> None:
    stores = memory_store_set()
    async with client_for(make_settings(data_backend="supabase"), stores) as client:
        stores.storage_policy.failure = StoreQueryFailed("supabase", "boom", details={"reason": "refused"})
        read = await client.get(POLICY, headers=A)
        assert read.status_code == 502
        assert read.json()["error"]["message"] == "Failed to read storage policy from Supabase"
        write = await client.patch(POLICY, headers=A, json={"operational": "local"})
        assert write.json()["error"]["code"] == "SUPABASE_QUERY_FAILED"
        assert write.json()["error"]["message"] == "Failed to write storage policy to Supabase"


async def test_unexpected_exception_is_a_bare_500() -> None:
    stores = memory_store_set()

    async def explode(tenant_id: str) -> StoragePolicy | None:
        raise RuntimeError("secret internals /etc/passwd")

    stores.storage_policy.read = explode  # type: ignore[method-assign]
    async with client_for(make_settings(), stores) as client:
        response = await client.get(POLICY, headers=bearer(API_TOKEN))
    assert response.status_code == 500
    assert response.json() == {
        "success": False,
        "error": {"code": "INTERNAL_ERROR", "message": "Internal server error"},
    }


async def test_framework_errors_use_the_envelope(fake_api: httpx.AsyncClient) -> None:
    app: FastAPI = fake_api._transport.app  # type: ignore[attr-defined]
    assert app.docs_url is None
    assert app.redoc_url is None
    response = await fake_api.get("/docs")
    assert response.status_code == 404
    assert response.json()["success"] is False
