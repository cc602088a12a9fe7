"""The PostgREST stand-in: the gateway key, token verification, function resolution and PostgREST's
error mapping, against the real migration."""

from __future__ import annotations

import time
from typing import Any

import httpx
import jwt
import pytest

from harness.postgres.migrated import PgDatabase
from harness.postgres.postgrest import PostgrestStandIn, postgrest_status

pytestmark = pytest.mark.integration

ANON_KEY = "anon-key-for-the-stand-in"
SECRET = "jwt-secret-for-the-stand-in-tests"
URL = "http://supabase.test"


def _token(*, tenant: str = "acme", sub: str = "uid-1", lifetime_s: int = 60, secret: str = SECRET) -> str:
    now = int(time.time())
    claims = {
        "role": "authenticated",
        "aud": "authenticated",
        "sub": sub,
        "app_metadata": {"tenant_id": tenant},
        "iat": now,
        "exp": now + lifetime_s,
    }
    return jwt.encode(claims, secret, algorithm="HS256")


async def _post(
    database: PgDatabase, function: str, body: dict[str, Any], *, token: str | None, apikey: str = ANON_KEY
) -> httpx.Response:
    stand_in = PostgrestStandIn(database.admin_dsn, anon_key=ANON_KEY, jwt_secret=SECRET)
    headers = {"apikey": apikey} | ({"Authorization": f"Bearer {token}"} if token else {})
    async with httpx.AsyncClient(transport=httpx.MockTransport(stand_in), base_url=URL) as client:
        return await client.post(f"/rest/v1/rpc/{function}", json=body, headers=headers)


async def test_runs_the_call_as_the_token_role_with_its_claims(pg_database: PgDatabase) -> None:
    written = await _post(
        pg_database,
        "storage_policy_merge",
        {"p_tenant_id": "acme", "p_sync_enabled": True, "p_if_match": None},
        token=_token(sub="uid-7"),
    )
    assert written.status_code == 200, written.text
    (row,) = written.json()
    assert (row["tenant_id"], row["sync_enabled"], row["version"], row["updated_by"]) == (
        "acme",
        True,
        1,
        "uid-7",
    )
    # Row-level security applies: another tenant's token sees nothing.
    seen = await _post(
        pg_database, "storage_policy_read", {"p_tenant_id": "acme"}, token=_token(tenant="other")
    )
    assert (seen.status_code, seen.json()) == (200, [])


@pytest.mark.parametrize(
    ("apikey", "token", "status", "code"),
    [
        ("not-the-anon-key", "valid", 401, None),
        (ANON_KEY, "expired", 401, "PGRST303"),
        (ANON_KEY, "forged", 401, "PGRST301"),
    ],
)
async def test_refuses_what_kong_and_postgrest_refuse(
    pg_database: PgDatabase, apikey: str, token: str, status: int, code: str | None
) -> None:
    tokens = {"valid": _token(), "expired": _token(lifetime_s=-60), "forged": _token(secret="x" * 40)}
    answer = await _post(
        pg_database, "storage_policy_read", {"p_tenant_id": "acme"}, token=tokens[token], apikey=apikey
    )
    assert answer.status_code == status
    assert answer.json().get("code") == code


async def test_anon_is_refused_with_postgrests_401(pg_database: PgDatabase) -> None:
    answer = await _post(pg_database, "storage_policy_read", {"p_tenant_id": "acme"}, token=None)
    assert (answer.status_code, answer.json()["code"]) == (401, "42501")
    assert answer.json()["message"] == "permission denied for function storage_policy_read"


async def test_unknown_argument_names_are_pgrst202(pg_database: PgDatabase) -> None:
    answer = await _post(
        pg_database, "storage_policy_read", {"p_tenant_id": "acme", "p_x": 1}, token=_token()
    )
    assert answer.status_code == 404
    assert answer.json()["code"] == "PGRST202"
    assert answer.json()["message"] == (
        "Could not find the function public.storage_policy_read(p_tenant_id, p_x) in the schema cache"
    )


@pytest.mark.parametrize(
    ("sqlstate", "authenticated", "status"),
    [
        ("42501", True, 403),
        ("42501", False, 401),
        ("BM412", True, 400),
        ("23514", True, 400),
        ("23505", True, 409),
        ("42883", True, 404),
        ("40001", True, 500),
        ("P0001", True, 400),
        ("08006", True, 503),
    ],
)
def test_status_table_is_postgrests(sqlstate: str, authenticated: bool, status: int) -> None:
    assert postgrest_status(sqlstate, authenticated=authenticated) == status
