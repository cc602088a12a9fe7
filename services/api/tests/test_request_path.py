"""What a request costs outside the stores: nothing in the request path leaves the event loop."""

from __future__ import annotations

import io
import json
from typing import Any

import anyio.to_thread
import httpx
import pytest
from api_fakes import memory_store_set
from api_support import API_TOKEN, ORIGIN, bearer, data, make_settings, running

from botmox_api.app import create_app
from botmox_api.model import StoreQueryFailed
from botmox_api.routes import storage_policy_direct
from botmox_api.shadow_reads import ShadowCounts, ShadowReads

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


POLICY = "/api/v1/settings/storage_policy"


async def _storage_policy_exchanges(
    direct: bool, monkeypatch: pytest.MonkeyPatch, *, shadow: bool = False
) -> tuple[list[object], ShadowCounts | None]:
    """Every kind of answer the storage-policy operations give, as (status, headers, body) and the
    log lines they wrote (shadow reads' own lines apart), with shadow reads' counts once every
    comparison is done; ``direct=False`` leaves them to the FastAPI routes."""
    with monkeypatch.context() as patch:
        if not direct:
            patch.setattr(storage_policy_direct, "DIRECT_METHODS", frozenset())
        answered_directly: list[str] = []
        answer = storage_policy_direct.StoragePolicyRoute._answer

        async def counted(route: Any, scope: Any, receive: Any) -> Any:
            answered_directly.append(scope["method"])
            return await answer(route, scope, receive)

        patch.setattr(storage_policy_direct.StoragePolicyRoute, "_answer", counted)
        stores = memory_store_set(shadow=shadow)
        stream = io.StringIO()
        exchanges: list[object] = []
        settings = make_settings(api_max_body_bytes=64, storage_policy_shadow=shadow)
        app = create_app(settings, stores=stores, log_stream=stream)
        shadow_reads: ShadowReads | None = app.state.shadow_reads
        async with running(app) as client:

            async def call(method: str, number: int, body: bytes | None = None, **headers: str) -> None:
                sent = {**bearer(API_TOKEN), "x-correlation-id": f"cid-{number}", **headers}
                response = await client.request(method, POLICY, content=body, headers=sent)
                exchanges.append(
                    (method, response.status_code, response.headers.multi_items(), response.content)
                )

            json_type = {"content-type": "application/json"}
            await call("GET", 1)
            await call("PATCH", 2, b'{"sync":{"enabled":true}}', **json_type)
            await call("PUT", 3, b'{"operational":"cloud"}', **json_type)
            await call("GET", 4, origin=ORIGIN)
            await call("PATCH", 5, b'{"operational":"local"}', **json_type, **{"if-match": '"2"'})
            await call("PATCH", 6, b'{"operational":"local"}', **json_type, **{"if-match": '"1", W/"3"'})
            await call("PUT", 7, b'{"operational":"nope","sync":1}', **json_type)
            await call("PUT", 8, b"{}", **json_type)
            await call("PUT", 9, b"[1]", **json_type)
            await call("PUT", 10, b'{"operational":', **json_type)
            await call("PUT", 11, b'{"operational":"cloud"}', **{"content-type": "text/plain"})
            await call("PUT", 12, b'{"operational":"' + b"x" * 64 + b'"}', **json_type)
            await call("HEAD", 13)
            await call("DELETE", 14)
            stores.storage_policy.failure = StoreQueryFailed("rtdb", "boom", details={"reason": "down"})  # type: ignore[attr-defined]
            await call("GET", 15)
            await call("PATCH", 16, b'{"operational":"cloud"}', **json_type)
            if shadow_reads is not None:
                await shadow_reads.settled()
        assert len(answered_directly) == (14 if direct else 0)  # all but HEAD and DELETE
        for line in stream.getvalue().splitlines():
            logged = json.loads(line)
            if logged["event"] != "started" and not logged["event"].startswith("storage_policy_shadow"):
                exchanges.append({k: v for k, v in logged.items() if k not in ("timestamp", "duration_ms")})
        return exchanges, shadow_reads.counts() if shadow_reads is not None else None


async def test_the_direct_storage_policy_route_answers_as_the_fastapi_routes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    direct, _ = await _storage_policy_exchanges(True, monkeypatch)
    through_fastapi, _ = await _storage_policy_exchanges(False, monkeypatch)
    assert direct == through_fastapi
    statuses = [exchange[1] for exchange in direct if isinstance(exchange, tuple)]
    assert statuses == [200, 200, 200, 200, 200, 412, 400, 400, 400, 400, 415, 413, 405, 405, 502, 502]


@pytest.mark.parametrize("direct", [True, False], ids=["direct", "fastapi"])
async def test_shadow_reads_change_no_answer(direct: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    """With shadow reads on, every answer and log line is byte for byte the one without; the two
    successful reads (1 and 4) were compared: the first matched (nothing stored on either side), the
    second did not (the shadow store never saw the writes); the failed read (15) was not offered."""
    without, _ = await _storage_policy_exchanges(direct, monkeypatch)
    shadowed, counts = await _storage_policy_exchanges(direct, monkeypatch, shadow=True)
    assert shadowed == without
    assert counts == ShadowCounts(offered=2, compared=2, matched=1, mismatched=1)
