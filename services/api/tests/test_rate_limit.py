"""Rate limiting: per principal, per client address without a valid token; exemptions."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from api_fakes import memory_store_set
from api_support import (
    API_TOKEN,
    BASE_URL,
    JWT_SECRET,
    ORIGIN,
    bearer,
    client_for,
    error_code,
    make_settings,
    supabase_token,
    user,
)

from botmox_api.app import create_app
from botmox_api.config import ApiSettings
from botmox_api.gate import ClientAddresses, FixedWindowRateLimiter


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
        make_settings(api_rate_limit_max=3, api_rate_limit_window_s=60), memory_store_set()
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


def test_peek_does_not_count() -> None:
    limiter = FixedWindowRateLimiter(1, 60, clock=FakeClock())
    assert limiter.peek("k").allowed
    assert limiter.peek("k").allowed
    assert limiter.hit("k").allowed
    assert not limiter.peek("k").allowed
    assert limiter.peek("k").retry_after_s == 60


def _peers(settings: ApiSettings) -> Callable[[str], httpx.AsyncClient]:
    """``_peers(settings)(address)``: a client of one app (in-memory stores) whose TCP peer is ``address``."""
    app = create_app(settings, stores=memory_store_set())

    def client(address: str) -> httpx.AsyncClient:
        return httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app, client=(address, 50000)), base_url=BASE_URL
        )

    return client


async def _bad_token_statuses(
    client: httpx.AsyncClient, count: int, forwarded: str | None = None
) -> list[int]:
    headers = bearer("wrong")
    if forwarded is not None:
        headers["X-Forwarded-For"] = forwarded
    return [(await client.get("/api/v1/settings", headers=headers)).status_code for _ in range(count)]


async def test_behind_a_trusted_proxy_clients_are_counted_not_the_proxy() -> None:
    peers = _peers(make_settings(api_rate_limit_max=2, forwarded_allow_ips="10.0.0.0/8"))
    async with peers("10.0.0.1") as proxy, peers("203.0.113.9") as stranger:
        assert await _bad_token_statuses(proxy, 3, "198.51.100.7") == [401, 401, 429]
        # Another client behind the same proxy has its own budget.
        assert await _bad_token_statuses(proxy, 1, "198.51.100.8") == [401]
        # The right-most untrusted address counts: what the client wrote on the left is ignored,
        # trusted hops on the right are skipped.
        assert await _bad_token_statuses(proxy, 1, "192.0.2.1, 198.51.100.7") == [429]
        assert await _bad_token_statuses(proxy, 1, "198.51.100.7, 10.0.0.9") == [429]
        # A peer that is not a trusted proxy cannot pick its address with the header.
        statuses = [(await _bad_token_statuses(stranger, 1, f"192.0.2.{n}"))[0] for n in range(3)]
        assert statuses == [401, 401, 429]


async def test_forwarded_for_is_ignored_by_default() -> None:
    peers = _peers(make_settings(api_rate_limit_max=2))
    async with peers("10.0.0.1") as proxy:
        statuses = [(await _bad_token_statuses(proxy, 1, f"198.51.100.{n}"))[0] for n in range(3)]
    assert statuses == [401, 401, 429]


@pytest.mark.parametrize(
    ("peer", "forwarded", "client"),
    [
        ("127.0.0.1", None, "127.0.0.1"),
        ("127.0.0.1", "198.51.100.7", "198.51.100.7"),
        ("127.0.0.1", "192.0.2.1,198.51.100.7", "198.51.100.7"),
        ("127.0.0.1", "198.51.100.7, 127.0.0.1, 10.1.2.3", "198.51.100.7"),
        ("127.0.0.1", "10.1.2.3, 127.0.0.1", "10.1.2.3"),  # every hop trusted: the farthest one
        ("127.0.0.1", "not-an-address, 10.1.2.3", "10.1.2.3"),  # garbage: the hop that reported it
        ("127.0.0.1", "[2001:db8::1]", "2001:db8::1"),
        ("198.51.100.9", "192.0.2.1", "198.51.100.9"),  # untrusted peer: header ignored
    ],
)
def test_client_address_from_the_forwarded_chain(peer: str, forwarded: str | None, client: str) -> None:
    settings = make_settings(forwarded_allow_ips="127.0.0.1,10.0.0.0/8")
    headers: list[tuple[bytes, bytes]] = [(b"x-forwarded-for", forwarded.encode())] if forwarded else []
    scope: dict[str, Any] = {"type": "http", "client": (peer, 1), "headers": headers}
    assert ClientAddresses(settings.forwarded_allow_ips).of(scope) == client


async def test_an_address_over_its_limit_costs_no_signature_check(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    verified: list[str] = []
    real_decode = jwt.decode

    def counting_decode(token: str, *args: Any, **kwargs: Any) -> Any:
        verified.append(token)
        return real_decode(token, *args, **kwargs)

    monkeypatch.setattr(jwt, "decode", counting_decode)
    forged = supabase_token("tenant-a", secret="not-the-" + JWT_SECRET)
    async with client_for(make_settings(api_rate_limit_max=3), memory_store_set()) as client:
        statuses = [
            (await client.get("/api/v1/settings", headers=bearer(forged))).status_code for _ in range(20)
        ]
        assert statuses == [401] * 3 + [429] * 17
        assert len(verified) == 3
        # Internal tokens stay exempt, and are never signature-checked.
        assert (await client.get("/api/v1/settings", headers=bearer(API_TOKEN))).status_code == 200
        assert len(verified) == 3


def test_uvicorn_leaves_the_client_address_to_the_gate(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    import botmox_api.__main__ as entry

    served: dict[str, Any] = {}
    monkeypatch.chdir(tmp_path)  # no .env
    monkeypatch.setenv("FORWARDED_ALLOW_IPS", "127.0.0.1")  # uvicorn reads it too
    monkeypatch.setattr(entry.uvicorn, "run", lambda _app, **options: served.update(options))
    monkeypatch.setattr(entry.logs, "route_stdlib_logging", lambda **_options: None)  # process-wide
    entry.main()
    assert served["proxy_headers"] is False
