"""Differential test: the same request sequences against ``rtdb`` and ``supabase`` mode must get the
same status codes, bodies (less ``updated_at``) and ETags.

A seeded generator with a fixed budget (``SEEDS`` x ``STEPS``) draws requests over several tenants:
GET/PUT/PATCH, ``If-Match`` (absent, ``*``, weak, stale, the current ETag), valid and bad bodies, valid
and bad paths. Each mode has its own RTDB namespace (and, for supabase, its own database), so the two
runs never share data. A failure prints the seed and step to replay.
"""

from __future__ import annotations

import json
import random
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from api_support import client_for, make_settings, user

from harness.fixtures.rtdb import unique_namespace

pytestmark = pytest.mark.integration

SEEDS = (1, 2, 3, 4)
STEPS = 80
TENANTS = ("t-alpha", "t-beta", "t-gamma")

PATHS = (
    "storage_policy",
    "settings/storage_policy",
    "storage_policy/",
    "alerts",
    "alerts/warning_days",
    "proxy",
    "proxy/fraud_score_threshold",
    "generators/g1",
    "generators",
    "",
    "settings",
    "storage_policy/sync",
    "a.b",
    "a//b",
    "x/%24y",
)
POLICY_BODIES: tuple[Any, ...] = (
    {"operational": "local"},
    {"operational": "cloud"},
    {"sync": {"enabled": True}},
    {"sync": {"enabled": False}, "operational": "local"},
    {"secrets": "local-only"},
    {"operational": "x"},
    {"sync": {}},
    {"sync": True},
    {},
    [],
    "str",
    None,
    {"updated_at": 5},
    {"secrets": "cloud"},
)
GENERIC_BODIES: tuple[Any, ...] = (
    {"warning_days": 7},
    {"warning_days": 0},
    {"warning_days": 7.5},
    {"warning_days": None, "x": 1},
    {"fraud_score_threshold": 50},
    {"check_interval_hours": 200},
    {"a": {"b": 1}},
    {"a": None},
    {},
    5,
    "text",
    [1, 2],
    {"bad.key": 1},
    True,
)
IF_MATCH = (None, None, None, "*", 'W/"1"', '"1"', '"2"', "current")


@dataclass
class Step:
    tenant: str
    method: str
    path: str
    headers: dict[str, str]
    content: bytes | None


def draw(rng: random.Random, etags: dict[str, str]) -> Step:
    tenant = rng.choice(TENANTS)
    headers = user(tenant, sub=f"{tenant}-user")
    method = rng.choice(("GET", "PUT", "PATCH", "PATCH", "PUT"))
    path = rng.choice(PATHS)
    if method == "GET":
        return Step(tenant, method, path, headers, None)
    pool = POLICY_BODIES if "storage_policy" in path else GENERIC_BODIES
    body = rng.choice(pool + POLICY_BODIES[:2] + GENERIC_BODIES[:2])
    tag = rng.choice(IF_MATCH)
    if tag == "current":
        tag = etags.get(tenant)
    if tag:
        headers = {**headers, "If-Match": tag}
    kind = rng.random()
    if kind < 0.05:
        return Step(tenant, method, path, {**headers, "Content-Type": "application/json"}, b"{not json")
    if kind < 0.08:
        return Step(tenant, method, path, {**headers, "Content-Type": "text/plain"}, b"{}")
    return Step(
        tenant, method, path, {**headers, "Content-Type": "application/json"}, json.dumps(body).encode()
    )


def comparable(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: comparable(v) for k, v in value.items() if k != "updated_at"}
    if isinstance(value, list):
        return [comparable(v) for v in value]
    return value


@pytest.fixture
async def twins(request: pytest.FixtureRequest) -> AsyncIterator[dict[str, httpx.AsyncClient]]:
    emulator = request.getfixturevalue("rtdb_emulator")
    database = request.getfixturevalue("pg_database")

    def settings(mode: str) -> Any:
        extra = {"supabase_db_url": database.api_dsn} if mode == "supabase" else {}
        return make_settings(
            data_backend=mode,
            firebase_database_url=f"https://{unique_namespace('diff')}.firebaseio.com",
            firebase_database_emulator_host=emulator.host,
            **extra,
        )

    async with client_for(settings("rtdb")) as rtdb, client_for(settings("supabase")) as supabase:
        yield {"rtdb": rtdb, "supabase": supabase}


@pytest.mark.parametrize("seed", SEEDS)
async def test_modes_answer_identically(twins: dict[str, httpx.AsyncClient], seed: int) -> None:
    rng = random.Random(seed)
    etags: dict[str, str] = {}
    seen: set[int] = set()
    for index in range(STEPS):
        step = draw(rng, etags)
        answers = {
            mode: await client.request(
                step.method, f"/api/v1/settings/{step.path}", headers=step.headers, content=step.content
            )
            for mode, client in twins.items()
        }
        rtdb, supabase = answers["rtdb"], answers["supabase"]
        if_match = step.headers.get("If-Match")
        where = f"seed={seed} step={index}: {step.method} {step.path} {if_match} {step.content!r}"
        assert rtdb.status_code == supabase.status_code, f"{where}\n{rtdb.text}\n{supabase.text}"
        seen.add(rtdb.status_code)
        assert comparable(rtdb.json()) == comparable(supabase.json()), (
            f"{where}\n{rtdb.text}\n{supabase.text}"
        )
        assert rtdb.headers.get("etag") == supabase.headers.get("etag"), where
        if rtdb.headers.get("etag") and "storage_policy" in step.path:
            etags[step.tenant] = rtdb.headers["etag"]
    # the sequence exercised both successes and refusals, not only one kind of answer
    assert {200, 400} <= seen, seen
    assert seen & {405, 412, 415}, seen
