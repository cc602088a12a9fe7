"""Structured logs: one line per request with correlation id, method, path, status, duration;
never a token, key or secret."""

from __future__ import annotations

import io
import json

from api_fakes import MemoryStoreSet
from api_support import API_TOKEN, JWT_SECRET, bearer, client_for, make_settings, supabase_token

from botmox_api.logs import build_logger


async def test_request_lines_carry_correlation_id_and_no_secret() -> None:
    stream = io.StringIO()
    user_token = supabase_token("tenant-a")
    async with client_for(make_settings(), MemoryStoreSet(), log_stream=stream) as client:
        await client.get(
            "/api/v1/auth/verify?token=" + user_token,
            headers={**bearer(API_TOKEN), "x-correlation-id": "cid-1"},
        )
        await client.get("/api/v1/settings", headers={**bearer(user_token), "x-correlation-id": "cid-2"})
        await client.get(
            "/api/v1/settings", headers={**bearer("bad-" + API_TOKEN), "x-correlation-id": "cid-3"}
        )
    text = stream.getvalue()
    for secret in (API_TOKEN, user_token, JWT_SECRET):
        assert secret not in text
    lines = [json.loads(line) for line in text.splitlines()]
    requests = [line for line in lines if line["event"] == "request"]
    assert [(r["correlation_id"], r["method"], r["path"], r["status"]) for r in requests] == [
        ("cid-1", "GET", "/api/v1/auth/verify", 200),
        ("cid-2", "GET", "/api/v1/settings", 200),
        ("cid-3", "GET", "/api/v1/settings", 401),
    ]
    assert all(isinstance(r["duration_ms"], float) for r in requests)


def test_redaction_of_careless_calls() -> None:
    stream = io.StringIO()
    logger = build_logger(stream=stream, fmt="console")
    logger.info(
        "oops",
        authorization="Bearer abc.def.ghi",
        note="header was Bearer sekrit",
        dsn_hint="postgresql://botmox_api:pw123@127.0.0.1/db",
        supabase_db_url="x",
    )
    text = stream.getvalue()
    assert "sekrit" not in text
    assert "pw123" not in text
    assert "abc.def.ghi" not in text
