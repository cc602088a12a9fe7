"""CORS (``docs/contracts/api-v1.md``, "CORS"): custom preflight answers and exposed headers."""

from __future__ import annotations

import httpx
import pytest
from api_support import API_TOKEN, ORIGIN, bearer

VERIFY = "/api/v1/auth/verify"
PREFLIGHT = {"Access-Control-Request-Method": "PUT", "Access-Control-Request-Headers": "authorization"}


@pytest.mark.parametrize("origin", [ORIGIN, ORIGIN.upper().replace("HTTP", "http")])
async def test_preflight_from_listed_origin(fake_api: httpx.AsyncClient, origin: str) -> None:
    response = await fake_api.options("/api/v1/settings/alerts", headers={"Origin": origin, **PREFLIGHT})
    assert response.status_code == 204
    assert response.headers["access-control-allow-origin"] == origin
    assert response.headers["access-control-allow-methods"] == "GET, POST, PUT, PATCH, DELETE, OPTIONS"
    assert (
        response.headers["access-control-allow-headers"]
        == "Authorization, Content-Type, If-Match, x-correlation-id"
    )
    assert "x-correlation-id" in response.headers


async def test_preflight_from_other_origin_is_refused(fake_api: httpx.AsyncClient) -> None:
    response = await fake_api.options(
        "/api/v1/settings", headers={"Origin": "https://evil.example", **PREFLIGHT}
    )
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "FORBIDDEN"
    assert not [name for name in response.headers if name.startswith("access-control-allow-")]


async def test_preflight_needs_no_token_and_is_not_routed(fake_api: httpx.AsyncClient) -> None:
    response = await fake_api.options("/api/v1/nope", headers={"Origin": ORIGIN, **PREFLIGHT})
    assert response.status_code == 204


async def test_simple_response_exposes_headers(fake_api: httpx.AsyncClient) -> None:
    response = await fake_api.get("/api/v1/auth/verify", headers={"Origin": ORIGIN, **bearer(API_TOKEN)})
    assert response.headers["access-control-allow-origin"] == ORIGIN
    exposed = {h.strip().lower() for h in response.headers["access-control-expose-headers"].split(",")}
    assert exposed == {"etag", "x-correlation-id"}
    other = await fake_api.get("/api/v1/auth/verify", headers={"Origin": "https://evil", **bearer(API_TOKEN)})
    assert "access-control-allow-origin" not in other.headers


def _varies_on_origin(response: httpx.Response) -> bool:
    values = ",".join(response.headers.get_list("vary"))
    return "origin" in {v.strip().lower() for v in values.split(",")}


async def test_every_answer_varies_on_origin(fake_api: httpx.AsyncClient) -> None:
    """Whether an answer carries Access-Control-Allow-Origin (or is a 204 or a 403 preflight) depends on
    Origin, so a cache must key on it: for listed, unlisted and absent origins alike."""
    answers = [
        await fake_api.options("/api/v1/settings", headers={"Origin": ORIGIN, **PREFLIGHT}),
        await fake_api.options("/api/v1/settings", headers={"Origin": "https://evil.example", **PREFLIGHT}),
        await fake_api.get(VERIFY, headers={"Origin": ORIGIN, **bearer(API_TOKEN)}),
        await fake_api.get(VERIFY, headers={"Origin": "https://evil.example", **bearer(API_TOKEN)}),
        await fake_api.get(VERIFY, headers=bearer(API_TOKEN)),
        await fake_api.get(VERIFY),  # 401
        await fake_api.get("/api/v1/health/live", headers={"Origin": ORIGIN}),
    ]
    assert [a.status_code for a in answers] == [204, 403, 200, 200, 200, 401, 200]
    for answer in answers:
        assert _varies_on_origin(answer), answer.headers
        assert len(answer.headers.get_list("vary")) == 1, answer.headers
