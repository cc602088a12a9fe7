"""Concurrent writes through the API on the real stores, both modes.

Requests are fired with ``asyncio.gather`` through ``httpx.ASGITransport``: the app runs on the
test's event loop and every store call awaits (psycopg async, RTDB over aiohttp), so the
requests interleave for real. ``InFlight`` counts requests inside the app at once, and each test
asserts the peak went well above one: a test that silently ran the requests one by one would prove
nothing about lost updates.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, Final

import httpx
import pytest
from api_support import BASE_URL, data, error_code, make_settings, user
from starlette.types import ASGIApp, Receive, Scope, Send

from botmox_api.app import create_app

pytestmark = pytest.mark.slow

WRITERS: Final = 200
RACERS: Final = 20
POLICY: Final = "/api/v1/settings/storage_policy"
HEADERS: Final = user("concurrency", sub="concurrency-user")


class InFlight:
    """ASGI wrapper that records the peak number of HTTP requests being served at once."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.current = 0
        self.peak = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        self.current += 1
        self.peak = max(self.peak, self.current)
        try:
            await self.app(scope, receive, send)
        finally:
            self.current -= 1


@dataclass
class ConcurrentApi:
    client: httpx.AsyncClient
    in_flight: InFlight


@asynccontextmanager
async def _serve(overrides: dict[str, object]) -> AsyncIterator[ConcurrentApi]:
    app = create_app(make_settings(api_rate_limit_max=100_000, **overrides))
    in_flight = InFlight(app)
    limits = httpx.Limits(max_connections=None, max_keepalive_connections=None)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=in_flight), base_url=BASE_URL, limits=limits, timeout=60
        ) as client,
    ):
        yield ConcurrentApi(client, in_flight)


@pytest.fixture
async def concurrent_api(real_settings_overrides: dict[str, object]) -> AsyncIterator[ConcurrentApi]:
    async with _serve(real_settings_overrides) as served:
        yield served


async def _all(requests: list[Any]) -> list[httpx.Response]:
    return list(await asyncio.gather(*requests))


async def test_concurrent_patches_of_different_children_lose_nothing(concurrent_api: ConcurrentApi) -> None:
    client = concurrent_api.client
    responses = await _all(
        [client.patch("/api/v1/settings/alerts", json={f"k{i}": i}, headers=HEADERS) for i in range(WRITERS)]
    )
    assert [r.status_code for r in responses] == [200] * WRITERS, {
        r.text for r in responses if r.status_code != 200
    }
    assert concurrent_api.in_flight.peak >= 10

    node = data(await client.get("/api/v1/settings/alerts", headers=HEADERS))
    node.pop("updated_at")
    assert node == {f"k{i}": i for i in range(WRITERS)}


async def test_concurrent_storage_policy_patches_each_bump_the_version_once(
    concurrent_api: ConcurrentApi,
) -> None:
    client = concurrent_api.client
    created = await client.put(
        POLICY, json={"operational": "cloud", "sync": {"enabled": False}}, headers=HEADERS
    )
    assert created.headers["ETag"] == '"1"'

    # Alternating fields: every even writer sets operational, every odd one sync.enabled.
    bodies = [{"operational": "local"} if i % 2 == 0 else {"sync": {"enabled": True}} for i in range(WRITERS)]
    responses = await _all([client.patch(POLICY, json=body, headers=HEADERS) for body in bodies])
    assert [r.status_code for r in responses] == [200] * WRITERS, {
        r.text for r in responses if r.status_code != 200
    }
    assert concurrent_api.in_flight.peak >= 10
    # A lost update would show as two writes answering the same version.
    assert sorted(int(r.headers["ETag"].strip('"')) for r in responses) == list(range(2, WRITERS + 2))

    final = await client.get(POLICY, headers=HEADERS)
    assert final.headers["ETag"] == f'"{1 + WRITERS}"'
    assert data(final)["operational"] == "local"
    assert data(final)["sync"] == {"enabled": True}


async def test_racing_puts_with_the_same_if_match_have_one_winner(concurrent_api: ConcurrentApi) -> None:
    client = concurrent_api.client
    created = await client.put(POLICY, json={"operational": "cloud"}, headers=HEADERS)
    etag = created.headers["ETag"]

    bodies = [{"operational": "local", "sync": {"enabled": i % 2 == 0}} for i in range(RACERS)]
    responses = await _all(
        [client.put(POLICY, json=body, headers=HEADERS | {"If-Match": etag}) for body in bodies]
    )
    statuses = sorted(r.status_code for r in responses)
    assert statuses == [200] + [412] * (RACERS - 1), statuses
    assert concurrent_api.in_flight.peak >= 2
    winner = next(r for r in responses if r.status_code == 200)
    for loser in (r for r in responses if r.status_code == 412):
        assert error_code(loser) == "PRECONDITION_FAILED"

    final = await client.get(POLICY, headers=HEADERS)
    assert final.headers["ETag"] == '"2"' == winner.headers["ETag"]
    assert data(final)["sync"] == data(winner)["sync"]
