"""Authentication and tenancy (``docs/contracts/api-v1.md``) on in-memory stores: the API's own rules."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import httpx
import jwt
import pytest
from api_fakes import memory_store_set
from api_support import (
    API_TOKEN,
    INFRA_TOKEN,
    JWT_SECRET,
    bearer,
    client_for,
    data,
    error_code,
    make_settings,
    supabase_token,
    unsigned_token,
)

from botmox_api import auth

VERIFY = "/api/v1/auth/verify"


async def _verify(client: httpx.AsyncClient, headers: dict[str, str]) -> httpx.Response:
    return await client.get(VERIFY, headers=headers)


async def test_internal_tokens(fake_api: httpx.AsyncClient) -> None:
    assert data(await _verify(fake_api, bearer(INFRA_TOKEN))) == {
        "uid": "internal-infra",
        "email": "infra@internal",
        "roles": ["infra", "admin"],
        "source": "internal",
        "tenant_id": "default",
    }
    assert data(await _verify(fake_api, bearer(API_TOKEN))) == {
        "uid": "internal-api",
        "email": "api@internal",
        "roles": ["api"],
        "source": "internal",
        "tenant_id": "default",
    }


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": ""},
        {"Authorization": "Bearer"},
        {"Authorization": "Bearer   "},
        {"Authorization": f"Basic {API_TOKEN}"},
        {"Authorization": API_TOKEN},
    ],
)
async def test_missing_token(fake_api: httpx.AsyncClient, headers: dict[str, str]) -> None:
    response = await _verify(fake_api, headers)
    assert response.status_code == 401
    assert response.json()["error"] == {"code": "UNAUTHORIZED", "message": "Bearer token is required"}


async def test_scheme_is_case_insensitive(fake_api: httpx.AsyncClient) -> None:
    response = await _verify(fake_api, {"Authorization": f"bEaReR {API_TOKEN}"})
    assert response.status_code == 200


async def test_supabase_principal(fake_api: httpx.AsyncClient) -> None:
    token = supabase_token("Tenant-A", app_metadata={"roles": ["admin", "infra", "root", 3, "api"]})
    assert data(await _verify(fake_api, bearer(token))) == {
        "uid": "user-1",
        "email": "user-1@example.com",
        "roles": ["api", "admin", "infra"],
        "source": "supabase",
        "tenant_id": "tenant-a",
    }


def _claims(**changes: object) -> dict[str, object]:
    """Claims relative to now; ``exp``/``nbf``/``iat`` given as ``("now", offset_s)`` are resolved here,
    at test time, so a long test session never ages a token past the skew it means to test."""
    now = int(time.time())
    claims: dict[str, object] = {
        "sub": "u",
        "aud": "authenticated",
        "exp": now + 600,
        "iat": now,
        "tenant_id": "t1",
    }
    claims.update(changes)
    resolved = {k: now + v[1] if isinstance(v, tuple) else v for k, v in claims.items()}
    return {k: v for k, v in resolved.items() if v is not None}


@pytest.mark.parametrize(
    ("changes", "accepted"),
    [
        ({}, True),
        ({"exp": ("now", -20)}, True),  # within 30 s of skew
        ({"exp": ("now", -60)}, False),
        ({"exp": None}, False),
        ({"sub": None}, False),
        ({"aud": "other"}, False),
        ({"nbf": ("now", 20)}, True),
        ({"nbf": ("now", 120)}, False),
        ({"iat": ("now", 120)}, False),
    ],
)
async def test_supabase_token_rules(
    fake_api: httpx.AsyncClient, changes: dict[str, object], accepted: bool
) -> None:
    token = jwt.encode(_claims(**changes), JWT_SECRET, algorithm="HS256")
    response = await _verify(fake_api, bearer(token))
    assert response.status_code == (200 if accepted else 401), response.text


async def test_forged_and_none_tokens_are_refused(fake_api: httpx.AsyncClient) -> None:
    forged = jwt.encode(_claims(), "another-secret-" + "x" * 32, algorithm="HS256")
    assert (await _verify(fake_api, bearer(forged))).status_code == 401
    assert (await _verify(fake_api, bearer(unsigned_token(_claims())))).status_code == 401
    assert (await _verify(fake_api, bearer("not-a-jwt"))).status_code == 401


async def test_only_hs256_is_accepted_even_with_the_right_key() -> None:
    # HS512 wants a key of 64 bytes or more (PyJWT warns otherwise), so this app's secret is one.
    secret = "jwt-secret-for-hs512-" + "k" * 64
    async with client_for(make_settings(supabase_jwt_secret=secret), memory_store_set()) as client:
        right_key = jwt.encode(_claims(), secret, algorithm="HS256")
        assert (await _verify(client, bearer(right_key))).status_code == 200
        for algorithm in ("HS384", "HS512"):
            same_key = jwt.encode(_claims(), secret, algorithm=algorithm)
            refused = await _verify(client, bearer(same_key))
            assert refused.status_code == 401, algorithm
            assert error_code(refused) == "UNAUTHORIZED"


async def test_issuer_checked_when_configured() -> None:
    settings = make_settings(supabase_jwt_issuer="https://sb.example/auth/v1")
    async with client_for(settings, memory_store_set()) as client:
        good = jwt.encode(_claims(iss="https://sb.example/auth/v1"), JWT_SECRET, algorithm="HS256")
        bad = jwt.encode(_claims(iss="https://evil"), JWT_SECRET, algorithm="HS256")
        assert (await _verify(client, bearer(good))).status_code == 200
        assert (await _verify(client, bearer(bad))).status_code == 401


@pytest.mark.parametrize(
    ("claims", "message", "tenant"),
    [
        ({"app_metadata": {"tenant_id": "from-meta"}, "tenant_id": "top"}, None, "from-meta"),
        ({"app_metadata": {"tenant_id": None}, "tenant_id": "top"}, None, "top"),
        ({"app_metadata": {"tenant_id": ""}, "tenant_id": "top"}, None, "top"),
        ({"tenant_id": "ACME_1"}, None, "acme_1"),
        ({}, "Token has no tenant", None),
        ({"tenant_id": None}, "Token has no tenant", None),
        ({"tenant_id": ""}, "Token has no tenant", None),
        ({"tenant_id": 5}, "Invalid tenant id", None),
        ({"app_metadata": {"tenant_id": ["a"]}, "tenant_id": "top"}, "Invalid tenant id", None),
        ({"tenant_id": "-bad"}, "Invalid tenant id", None),
        ({"tenant_id": "a" * 64}, "Invalid tenant id", None),
        ({"tenant_id": "a/b"}, "Invalid tenant id", None),
    ],
)
async def test_tenant_rules(
    fake_api: httpx.AsyncClient, claims: dict[str, object], message: str | None, tenant: str | None
) -> None:
    token = jwt.encode({**_claims(tenant_id=None), **claims}, JWT_SECRET, algorithm="HS256")
    response = await _verify(fake_api, bearer(token))
    if message is None:
        assert data(response)["tenant_id"] == tenant
    else:
        assert response.status_code == 403
        assert response.json()["error"] == {"code": "FORBIDDEN", "message": message}


async def test_user_naming_default_tenant_is_served_as_it(fake_api: httpx.AsyncClient) -> None:
    assert data(await _verify(fake_api, bearer(supabase_token("default"))))["tenant_id"] == "default"


async def test_settings_need_a_principal_and_role(fake_api: httpx.AsyncClient) -> None:
    assert (await fake_api.get("/api/v1/settings")).status_code == 401
    assert (await fake_api.get("/api/v1/settings", headers=bearer(INFRA_TOKEN))).status_code == 200


# -- Firebase ID tokens, through the Auth emulator convention ------------------------------------

PROJECT = "demo-botmox"


def _firebase_claims(**changes: object) -> dict[str, object]:
    now = int(time.time())
    claims: dict[str, object] = {
        "iss": f"https://securetoken.google.com/{PROJECT}",
        "aud": PROJECT,
        "sub": "fb-user",
        "iat": now,
        "exp": now + 600,
        "auth_time": now,
        "email": "fb@example.com",
        "tenant_id": "fb-tenant",
        "roles": ["admin", "bogus"],
    }
    claims.update(changes)
    return claims


@pytest.fixture
async def firebase_api(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[httpx.AsyncClient]:
    # firebase-admin reads the emulator host from the process environment only
    monkeypatch.setenv("FIREBASE_AUTH_EMULATOR_HOST", "127.0.0.1:9099")
    settings = make_settings(firebase_project_id=PROJECT, firebase_auth_emulator_host="127.0.0.1:9099")
    async with client_for(settings, memory_store_set()) as client:
        yield client


async def test_firebase_unsigned_token_in_emulator_mode(firebase_api: httpx.AsyncClient) -> None:
    response = await _verify(firebase_api, bearer(unsigned_token(_firebase_claims())))
    assert data(response) == {
        "uid": "fb-user",
        "email": "fb@example.com",
        "roles": ["api", "admin"],
        "source": "firebase",
        "tenant_id": "fb-tenant",
    }


async def test_firebase_token_rules(firebase_api: httpx.AsyncClient) -> None:
    wrong_project = unsigned_token(_firebase_claims(aud="other-project"))
    assert (await _verify(firebase_api, bearer(wrong_project))).status_code == 401
    no_tenant = _firebase_claims()
    del no_tenant["tenant_id"]
    response = await _verify(firebase_api, bearer(unsigned_token(no_tenant)))
    assert response.status_code == 403
    assert error_code(response) == "FORBIDDEN"
    # HS256 tokens are still Supabase's
    assert (await _verify(firebase_api, bearer(supabase_token("t")))).status_code == 200


async def test_firebase_not_configured_refuses_its_tokens(fake_api: httpx.AsyncClient) -> None:
    assert (await _verify(fake_api, bearer(unsigned_token(_firebase_claims())))).status_code == 401


# -- The verified-token cache (auth.VerifiedTokens) ----------------------------------------------


class _Clock:
    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def decodes(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every signature check the authenticator makes, by token."""
    seen: list[str] = []
    real = jwt.decode

    def counting(token: str, *args: object, **kwargs: object) -> object:
        seen.append(token)
        return real(token, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(auth.jwt, "decode", counting)
    return seen


def _authenticator(clock: _Clock | None = None, **overrides: object) -> auth.Authenticator:
    return auth.Authenticator(make_settings(**overrides), None, clock=clock or _Clock())


async def test_a_verified_token_is_not_checked_again(decodes: list[str]) -> None:
    authenticator = _authenticator()
    token = supabase_token("tenant-a")
    first = await authenticator.verify(token)
    assert await authenticator.verify(token) is first
    assert decodes == [token]


async def test_a_hit_skips_the_signature_check_through_the_app(
    fake_api: httpx.AsyncClient, decodes: list[str]
) -> None:
    token = supabase_token("tenant-a")
    for _ in range(3):
        assert data(await _verify(fake_api, bearer(token)))["tenant_id"] == "tenant-a"
    assert decodes == [token]


async def test_an_entry_is_not_used_from_its_exp_on(decodes: list[str]) -> None:
    clock = _Clock()
    authenticator = _authenticator(clock)
    token = supabase_token("tenant-a", lifetime_s=100)
    exp = jwt.decode(token, options={"verify_signature": False})["exp"]
    decodes.clear()  # that was the test's own
    await authenticator.verify(token)
    clock.now = exp - 0.001
    await authenticator.verify(token)
    assert decodes == [token]
    clock.now = exp  # from exp on, the token is checked afresh (its skew is PyJWT's to grant)...
    await authenticator.verify(token)
    assert decodes == [token, token]
    await authenticator.verify(token)  # ...and an answer given past exp is not kept
    assert decodes == [token, token, token]


async def test_a_token_past_its_exp_within_the_skew_is_never_kept(decodes: list[str]) -> None:
    authenticator = _authenticator()
    token = supabase_token("tenant-a", lifetime_s=-10)  # accepted: 30 s of skew
    for _ in range(2):
        await authenticator.verify(token)
    assert decodes == [token, token]


async def test_a_failed_token_is_never_cached(fake_api: httpx.AsyncClient, decodes: list[str]) -> None:
    forged = supabase_token("tenant-a", secret="another-secret-" + "x" * 32)
    no_tenant = supabase_token(None)
    for _ in range(3):
        assert (await _verify(fake_api, bearer(forged))).status_code == 401
        assert (await _verify(fake_api, bearer(no_tenant))).status_code == 403
    assert decodes == [forged, no_tenant] * 3


async def test_the_cache_holds_at_most_its_size(decodes: list[str]) -> None:
    authenticator = _authenticator(token_cache_size=2)
    tokens = [supabase_token("tenant-a", sub=f"user-{n}") for n in range(3)]
    for token in tokens:
        await authenticator.verify(token)
    await authenticator.verify(tokens[2])  # the two most recent are kept
    await authenticator.verify(tokens[1])
    assert decodes == tokens
    await authenticator.verify(tokens[0])  # the least recently used (the first) had left
    assert decodes == [*tokens, tokens[0]]
    await authenticator.verify(tokens[1])  # used last, it stayed...
    assert decodes == [*tokens, tokens[0]]
    await authenticator.verify(tokens[2])  # ...while the least recently used made room
    assert decodes == [*tokens, tokens[0], tokens[2]]


async def test_a_size_of_zero_turns_the_cache_off(decodes: list[str]) -> None:
    authenticator = _authenticator(token_cache_size=0)
    token = supabase_token("tenant-a")
    for _ in range(2):
        await authenticator.verify(token)
    assert decodes == [token, token]


async def test_a_cached_token_never_yields_another_tenants_principal(decodes: list[str]) -> None:
    authenticator = _authenticator()
    tokens = {tenant: supabase_token(tenant, sub="same-user") for tenant in ("tenant-a", "tenant-b")}
    for _ in range(3):
        for tenant, token in tokens.items():
            principal = await authenticator.verify(token)
            assert (principal.tenant_id, principal.uid) == (tenant, "same-user")
    assert sorted(decodes) == sorted(tokens.values())


async def test_internal_tokens_are_not_cached(decodes: list[str]) -> None:
    authenticator = _authenticator()
    assert authenticator.internal(API_TOKEN) is not None
    assert decodes == []


class _CountingFirebase(auth.FirebaseTokenVerifier):
    def __init__(self, claims: dict[str, object]) -> None:  # no firebase-admin app
        self.claims = claims
        self.calls = 0

    async def verify(self, token: str) -> dict[str, object]:
        self.calls += 1
        return self.claims


async def test_firebase_tokens_are_cached_until_their_exp() -> None:
    clock = _Clock()
    claims = {**_firebase_claims(), "uid": "fb-user"}
    firebase = _CountingFirebase(claims)
    authenticator = auth.Authenticator(make_settings(), firebase, clock=clock)
    token = unsigned_token(claims)
    for _ in range(2):
        assert (await authenticator.verify(token)).source == "firebase"
    assert firebase.calls == 1
    clock.now = float(claims["exp"])  # type: ignore[arg-type]
    await authenticator.verify(token)
    assert firebase.calls == 2
