"""What a request costs outside the stores: nothing in the request path leaves the event loop."""

from __future__ import annotations

import anyio.to_thread
import httpx
import pytest
from api_support import API_TOKEN, bearer, data

WRITE: dict[str, str] = {**bearer(API_TOKEN), "content-type": "application/json"}


async def test_no_request_hops_to_a_thread(
    fake_api: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """FastAPI runs a plain ``def`` dependency or endpoint in its thread pool (anyio's): none is."""

    async def refuse(*_args: object, **_kwargs: object) -> object:
        raise AssertionError("a request ran code in a worker thread")

    monkeypatch.setattr(anyio.to_thread, "run_sync", refuse)
    policy = "/api/v1/settings/storage_policy"
    for path in ("/api/v1/health", "/api/v1/health/live", "/api/v1/health/ready", "/api/v1/auth/verify"):
        assert (await fake_api.get(path, headers=bearer(API_TOKEN))).status_code == 200, path
    assert data(await fake_api.put(policy, headers=WRITE, json={"operational": "cloud"}))
    assert data(await fake_api.patch(policy, headers=WRITE, json={"sync": {"enabled": True}}))
    assert data(await fake_api.get(policy, headers=bearer(API_TOKEN)))
    assert data(await fake_api.put("/api/v1/settings/theme", headers=WRITE, json={"mode": "dark"}))
    assert data(await fake_api.get("/api/v1/settings/theme", headers=bearer(API_TOKEN)))
    assert data(await fake_api.get("/api/v1/settings", headers=bearer(API_TOKEN)))
