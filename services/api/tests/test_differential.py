"""Differential test: the same request sequences against ``rtdb`` and ``supabase`` mode must get the
same status codes, bodies (less ``updated_at``) and ETags.

A seeded generator with a fixed budget (``SEEDS`` x ``STEPS``) draws requests over several tenants:
GET/PUT/PATCH, ``If-Match`` (absent, ``*``, weak, stale, the current ETag), valid and bad bodies, valid
and bad paths. Each mode has its own RTDB namespace (and, for supabase, its own database), so the two
runs never share data. A failure prints the seed and step to replay.

Input the API must refuse (or, at a limit, accept) is also replayed case by case: each case's
requests get the same answer in both modes, the last one the answer the contract names, and a
refused write leaves the tenant's settings as they were.
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

from botmox_api.model import MAX_LEVELS_BELOW_SETTINGS, MAX_SAFE_INTEGER
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
    "alerts/warning_days/x",
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
    {"n": 2**53 + 1},
    {"s": "\ud800"},
)
IF_MATCH = (None, None, None, "*", 'W/"1"', '"1"', '"2"', '"01"', '"9999999999999999999"', "current")


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


async def same_answer(twins: dict[str, httpx.AsyncClient], step: Step, where: str) -> httpx.Response:
    """Sends ``step`` to both modes, asserts they answer alike, and returns the rtdb mode's answer."""
    answers = {
        mode: await client.request(
            step.method, f"/api/v1/settings/{step.path}", headers=step.headers, content=step.content
        )
        for mode, client in twins.items()
    }
    rtdb, supabase = answers["rtdb"], answers["supabase"]
    assert rtdb.status_code == supabase.status_code, f"{where}\n{rtdb.text}\n{supabase.text}"
    assert comparable(rtdb.json()) == comparable(supabase.json()), f"{where}\n{rtdb.text}\n{supabase.text}"
    assert rtdb.headers.get("etag") == supabase.headers.get("etag"), where
    return rtdb


@pytest.mark.parametrize("seed", SEEDS)
async def test_modes_answer_identically(twins: dict[str, httpx.AsyncClient], seed: int) -> None:
    rng = random.Random(seed)
    etags: dict[str, str] = {}
    seen: set[int] = set()
    for index in range(STEPS):
        step = draw(rng, etags)
        if_match = step.headers.get("If-Match")
        where = f"seed={seed} step={index}: {step.method} {step.path} {if_match} {step.content!r}"
        rtdb = await same_answer(twins, step, where)
        seen.add(rtdb.status_code)
        if rtdb.headers.get("etag") and "storage_policy" in step.path:
            etags[step.tenant] = rtdb.headers["etag"]
    # the sequence exercised both successes and refusals, not only one kind of answer
    assert {200, 400} <= seen, seen
    assert seen & {405, 412, 415}, seen


EDGE_TENANT = "t-edge"
MALFORMED = {"code": "BAD_REQUEST", "message": "Malformed JSON body"}
TOO_DEEP = "Payload nested too deeply (max 29 levels below settings)"
OUT_OF_RANGE = "Number out of range (max ±2^53)"


def deep_path(segments: int) -> str:
    return "/".join(f"l{level}" for level in range(segments))


def invalid_body(*form_errors: str) -> dict[str, Any]:
    return {
        "code": "BAD_REQUEST",
        "message": "Invalid request body",
        "details": {"formErrors": list(form_errors), "fieldErrors": {}},
    }


def no_match(current_version: int | None) -> dict[str, Any]:
    return {
        "code": "PRECONDITION_FAILED",
        "message": "If-Match does not match the current version",
        "details": {"current_version": current_version},
    }


def too_many_segments(segments: int) -> dict[str, Any]:
    return {
        "code": "BAD_REQUEST",
        "message": "Invalid settings path",
        "details": {"path": deep_path(segments), "reason": "Too many path segments (max 29)"},
    }


def write(path: str, content: bytes | str, if_match: str | None = None, method: str = "PUT") -> Step:
    headers = {**user(EDGE_TENANT, sub="edge-user"), "Content-Type": "application/json"}
    if if_match is not None:
        headers["If-Match"] = if_match
    raw = content.encode() if isinstance(content, str) else content
    return Step(EDGE_TENANT, method, path, headers, raw)


STORE_POLICY = write("storage_policy", '{"operational": "local"}')  # version 1

# (id, requests before the one under test (each must succeed), the request, its status, its error
# object or its data)
EDGE_CASES: tuple[tuple[str, tuple[Step, ...], Step, int, Any], ...] = (
    ("lone-surrogate-in-key", (), write("misc", rb'{"\ud800.": 1}'), 400, MALFORMED),
    ("lone-surrogate-in-policy", (), write("storage_policy", rb'{"operational": "\ud800"}'), 400, MALFORMED),
    (
        "lone-low-surrogate-in-value",
        (),
        write("misc", rb'{"a": ["x\udc00"]}', method="PATCH"),
        400,
        MALFORMED,
    ),
    (
        "below-bounded-field",
        (write("alerts", '{"warning_days": 7}'),),
        write("alerts/warning_days/x", "999"),
        400,
        invalid_body("Expected number, received object"),
    ),
    (
        "below-bounded-field-patch",
        (),
        write("proxy/check_interval_hours/a/b", '{"c": 1}', method="PATCH"),
        400,
        invalid_body("Expected number, received object"),
    ),
    (
        "impossible-version-nothing-stored",
        (),
        write("storage_policy", '{"sync": {"enabled": true}}', '"9999999999999999999"'),
        412,
        no_match(None),
    ),
    (
        "impossible-version",
        (STORE_POLICY,),
        write(
            "storage_policy",
            '{"sync": {"enabled": true}}',
            '"9999999999999999999", "99999999999999999999999"',
        ),
        412,
        no_match(1),
    ),
    (
        "leading-zero-version",
        (STORE_POLICY,),
        write("storage_policy", '{"operational": "cloud"}', '"01"'),
        412,
        no_match(1),
    ),
    (
        "empty-if-match",
        (STORE_POLICY,),
        write("storage_policy", '{"operational": "cloud"}', ""),
        412,
        no_match(1),
    ),
    (
        "exact-version-matches",
        (STORE_POLICY,),
        write("storage_policy", '{"operational": "cloud"}', ' "1" '),
        200,
        {
            "secrets": "local-only",
            "operational": "cloud",
            "sync": {"enabled": False},
            "updated_by": "edge-user",
        },
    ),
    (
        "30-segments-read",
        (),
        Step(EDGE_TENANT, "GET", deep_path(30), user(EDGE_TENANT, sub="edge-user"), None),
        400,
        too_many_segments(30),
    ),
    ("32-segments-write", (), write(deep_path(32), "1"), 400, too_many_segments(32)),
    ("29-segments-scalar", (), write(deep_path(MAX_LEVELS_BELOW_SETTINGS), "1"), 200, 1),
    ("29-segments-object", (), write(deep_path(29), '{"a": 1}'), 400, invalid_body(TOO_DEEP)),
    ("28-segments-nested", (), write(deep_path(28), '{"a": {"b": 1}}'), 400, invalid_body(TOO_DEEP)),
    ("28-segments-array", (), write(deep_path(28), "[[1]]"), 400, invalid_body(TOO_DEEP)),
    (
        "beyond-2^53",
        (),
        write("numbers", json.dumps({"n": MAX_SAFE_INTEGER + 1, "m": [-MAX_SAFE_INTEGER - 1]})),
        400,
        invalid_body(OUT_OF_RANGE),
    ),
    ("beyond-2^53-scalar", (), write("numbers/n", "-9007199254740993"), 400, invalid_body(OUT_OF_RANGE)),
    ("at-2^53", (), write("numbers/n", "9007199254740992"), 200, 9007199254740992),
)


@pytest.mark.parametrize(
    ("before", "step", "status", "expected"),
    [pytest.param(*case[1:], id=case[0]) for case in EDGE_CASES],
)
async def test_modes_answer_edge_input_identically(
    twins: dict[str, httpx.AsyncClient], before: tuple[Step, ...], step: Step, status: int, expected: Any
) -> None:
    for index, earlier in enumerate(before):
        answer = await same_answer(twins, earlier, f"setup step {index}")
        assert answer.status_code == 200, answer.text
    read_tree = Step(EDGE_TENANT, "GET", "", user(EDGE_TENANT, sub="edge-user"), None)
    tree = comparable((await same_answer(twins, read_tree, "tree before")).json())
    answer = await same_answer(twins, step, f"{step.method} {step.path} {step.content!r}")
    assert answer.status_code == status, answer.text
    if status == 200:
        assert comparable(answer.json()["data"]) == expected
        return
    assert answer.json()["error"] == expected
    if step.method != "GET":  # a refused write stores nothing
        assert comparable((await same_answer(twins, read_tree, "tree after")).json()) == tree
