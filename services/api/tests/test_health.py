"""Health endpoints: no token, readiness rules per mode and REQUIRE_*_READY."""

from __future__ import annotations

from datetime import datetime

import httpx
import pytest
from api_fakes import MemoryStoreSet
from api_support import client_for, data, make_settings

from botmox_api.stores.protocols import Readiness

UP, DOWN = Readiness(True), Readiness(False, "connection refused")


async def test_health(fake_api: httpx.AsyncClient) -> None:
    body = data(await fake_api.get("/api/v1/health"))
    assert body["service"] == "bot-mox-api-v1"
    assert body["data_backend"] == "rtdb"
    datetime.fromisoformat(body["timestamp"])
    assert {
        k: body[k] for k in ("supabase_configured", "supabase_ready", "rtdb_configured", "rtdb_ready")
    } == {"supabase_configured": True, "supabase_ready": True, "rtdb_configured": True, "rtdb_ready": True}
    assert isinstance(body["version"], str)


async def test_live(fake_api: httpx.AsyncClient) -> None:
    body = data(await fake_api.get("/api/v1/health/live"))
    assert body["status"] == "live"
    assert body["service"] == "bot-mox-api-v1"


@pytest.mark.parametrize(
    ("backend", "require_supabase", "supabase", "rtdb", "ready"),
    [
        ("rtdb", False, DOWN, UP, True),  # Supabase not routed to, not required
        ("rtdb", True, DOWN, UP, False),  # REQUIRE_SUPABASE_READY
        ("rtdb", False, UP, DOWN, False),  # RTDB always serves generic paths
        ("supabase", False, DOWN, UP, False),
        ("supabase", False, UP, UP, True),
    ],
)
async def test_ready(
    backend: str, require_supabase: bool, supabase: Readiness, rtdb: Readiness, ready: bool
) -> None:
    settings = make_settings(data_backend=backend, require_supabase_ready=require_supabase)
    async with client_for(settings, MemoryStoreSet().with_readiness(supabase, rtdb)) as client:
        response = await client.get("/api/v1/health/ready")
    body = response.json()
    if ready:
        assert response.status_code == 200
        assert body["data"]["ready"] is True
        assert body["data"]["status"] == "ready"
        checks = body["data"]["checks"]
    else:
        assert response.status_code == 503
        assert body["error"]["code"] == "NOT_READY"
        assert body["error"]["details"]["ready"] is False
        checks = body["error"]["details"]["checks"]
    assert checks["supabase"]["required"] is (backend == "supabase" or require_supabase)
    assert checks["rtdb"]["required"] is True
    if not supabase.ready:
        assert checks["supabase"]["reason"] == "connection refused"


@pytest.mark.integration
async def test_ready_on_real_stores(api: httpx.AsyncClient, api_mode: str) -> None:
    response = await api.get("/api/v1/health/ready")
    assert response.status_code == 200, response.text
    health = data(await api.get("/api/v1/health"))
    assert health["data_backend"] == api_mode
    assert health["rtdb_ready"] is True
    assert health["supabase_configured"] is (api_mode == "supabase")
