"""Rate limiting: per principal, per client address without a valid token; exemptions."""

from __future__ import annotations

import httpx
import pytest
from api_fakes import MemoryStoreSet
from api_support import API_TOKEN, ORIGIN, bearer, client_for, error_code, make_settings, user

from botmox_api.rate_limit import FixedWindowRateLimiter


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_fixed_window_counts_and_resets() -> None:
    clock = FakeClock()
    limiter = FixedWindowRateLimiter(2, 60, clock=clock)
    assert limiter.hit("k").allowed
    assert limiter.hit("k").allowed
    refused = limiter.hit("k")
    assert not refused.allowed
    assert refused.retry_after_s == 60
    clock.now += 45.2
    assert limiter.hit("k").retry_after_s == 15
    assert limiter.hit("other").allowed
    clock.now += 15
    assert limiter.hit("k").allowed


def test_memory_is_bounded() -> None:
    clock = FakeClock()
    limiter = FixedWindowRateLimiter(5, 60, max_keys=100, clock=clock)
    for index in range(1000):
        limiter.hit(f"key-{index}")
    assert limiter.tracked_keys <= 100
    clock.now += 61
    limiter.hit("fresh")
    assert limiter.tracked_keys == 1


@pytest.fixture
async def limited() -> httpx.AsyncClient:  # type: ignore[misc]
    async with client_for(
        make_settings(api_rate_limit_max=3, api_rate_limit_window_s=60), MemoryStoreSet()
    ) as c:
        yield c


async def test_per_principal(limited: httpx.AsyncClient) -> None:
    alice, bob = user("t1", "alice"), user("t1", "bob")
    for _ in range(3):
        assert (await limited.get("/api/v1/settings", headers=alice)).status_code == 200
    refused = await limited.get("/api/v1/settings", headers=alice)
    assert refused.status_code == 429
    assert error_code(refused) == "RATE_LIMITED"
    assert 1 <= int(refused.headers["retry-after"]) <= 60
    assert (await limited.get("/api/v1/settings", headers=bob)).status_code == 200
    # same uid in another tenant is another principal
    assert (await limited.get("/api/v1/settings", headers=user("t2", "alice"))).status_code == 200


async def test_without_valid_token_counted_per_address(limited: httpx.AsyncClient) -> None:
    statuses = [
        (await limited.get("/api/v1/settings", headers=bearer("wrong"))).status_code for _ in range(4)
    ]
    assert statuses == [401, 401, 401, 429]


async def test_exemptions(limited: httpx.AsyncClient) -> None:
    for _ in range(6):
        assert (await limited.get("/api/v1/settings", headers=bearer(API_TOKEN))).status_code == 200
        assert (await limited.get("/api/v1/health/live")).status_code == 200
        preflight = await limited.options(
            "/api/v1/settings", headers={"Origin": ORIGIN, "Access-Control-Request-Method": "GET"}
        )
        assert preflight.status_code == 204
