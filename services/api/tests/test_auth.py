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
