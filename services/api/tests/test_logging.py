"""Structured logs: one line per request with correlation id, method, path, status, duration;
never a token, key or secret."""

from __future__ import annotations

import io
import json
import os
import re
import signal
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from api_fakes import memory_store_set
from api_support import (
    API_TOKEN,
    JWT_SECRET,
    bearer,
    clean_env,
    client_for,
    make_settings,
    server_process,
    supabase_token,
    wait_for,
)

from botmox_api import logs
from botmox_api.logs import build_logger
from botmox_api.model import StoreQueryFailed
from harness.processes import free_port

DB_PASSWORD = "hunter2-db-pa55word"


def _json_lines(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


async def test_request_lines_carry_correlation_id_and_no_secret() -> None:
    stream = io.StringIO()
    user_token = supabase_token("tenant-a")
    async with client_for(make_settings(), memory_store_set(), log_stream=stream) as client:
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


async def test_a_502_is_logged_with_its_cause_and_correlation_id() -> None:
    stream = io.StringIO()
    stores = memory_store_set()
    cause = psycopg.OperationalError("server closed the connection unexpectedly")
    failure = StoreQueryFailed("supabase", "boom", details={"reason": "Database connection failed"})
    failure.__cause__ = cause  # as the stores raise it: ``raise query_failed(...) from error``
    stores.storage_policy.failure = failure
    async with client_for(make_settings(data_backend="supabase"), stores, log_stream=stream) as client:
        response = await client.get(
            "/api/v1/settings/storage_policy", headers={**bearer(API_TOKEN), "x-correlation-id": "cid-502"}
        )
    assert response.status_code == 502
    assert "server closed" not in response.text  # the cause is for the server's log only
    failed = [line for line in _json_lines(stream.getvalue()) if line["event"] == "store_failed"]
    assert len(failed) == 1
    assert failed[0] == {
        **failed[0],
        "correlation_id": "cid-502",
        "level": "error",
        "status": 502,
        "code": "SUPABASE_QUERY_FAILED",
        "message": "Failed to read storage policy from Supabase",
        "reason": "Database connection failed",
        "cause": "OperationalError: server closed the connection unexpectedly",
    }


def test_a_store_failure_on_a_real_server_logs_its_cause_without_the_dsn_password(tmp_path: Path) -> None:
    """A mistyped DSN (an IPv6 host without its ``]``): libpq's parse error quotes the whole DSN;
    the store reports it without the DSN while the request ends in a 502."""
    port = free_port()
    env = clean_env(
        DATA_BACKEND="supabase",
        SUPABASE_DB_URL=f"postgresql://botmox_api:{DB_PASSWORD}@[::1/botmox",
        INTERNAL_API_TOKEN=API_TOKEN,
        PORT=str(port),
        LOG_FORMAT="json",
    )
    with server_process(env, tmp_path) as process:
        base = f"http://127.0.0.1:{port}/api/v1"
        assert wait_for(f"{base}/health/live", process).status_code == 200
        response = httpx.get(
            f"{base}/settings/storage_policy",
            headers={**bearer(API_TOKEN), "x-correlation-id": "cid-dsn"},
            timeout=15,
        )
        assert response.status_code == 502
        os.kill(process.pid, signal.SIGTERM)
        process.wait(timeout=10)
        assert process.stdout is not None
        assert process.stderr is not None
        stdout, stderr = process.stdout.read(), process.stderr.read()
    assert DB_PASSWORD not in stdout + stderr
    lines = _json_lines(stdout)
    failed = [line for line in lines if line["event"] == "store_failed"]
    assert [(f["correlation_id"], f["code"]) for f in failed] == [("cid-dsn", "SUPABASE_QUERY_FAILED")]
    assert failed[0]["cause"] == (
        "ConnectionUnavailable: SUPABASE_DB_URL is not a valid PostgreSQL connection string"
    )


def test_the_redaction_patterns() -> None:
    """The shapes the processor knows, whatever code logs them (the test above is a real one)."""
    stream = io.StringIO()
    build_logger(stream=stream, fmt="json").warning(
        "libpq said",
        authorization="Bearer abc.def.ghi",
        note="header was Bearer sekrit",
        supabase_db_url="x",
        uri='invalid URI: "postgresql://botmox_api:pw-one@[::1/botmox"',
        keywords="host=db.example.com password=pw-two dbname=botmox",
        quoted="host=db.example.com password='pw three' dbname=botmox",
        query="postgresql://db.example.com/botmox?PASSWORD=pw-four&sslmode=require",
        empty_user="postgresql://:pw-five@db.example.com/botmox",
    )
    text = stream.getvalue()
    for secret in ("pw-one", "pw-two", "pw three", "pw-four", "pw-five", "sekrit", "abc.def.ghi"):
        assert secret not in text
    line = json.loads(text)
    assert line["keywords"] == "host=db.example.com password=[redacted] dbname=botmox"
    assert line["uri"] == 'invalid URI: "postgresql://botmox_api:[redacted]@[::1/botmox"'


def _chain_and_direct(fmt: str, **fields: Any) -> tuple[str, str]:
    """The access line as the processor chain renders it and as ``AccessLog`` writes it."""
    chain, direct = io.StringIO(), io.StringIO()
    token = logs.bind_request(fields.pop("correlation_id"))
    try:
        build_logger(stream=chain, fmt=fmt).info("request", **fields)
        logger = build_logger(stream=direct, fmt=fmt)
        logs.AccessLog(logger, fmt=fmt, stream=direct).write(**fields)
    finally:
        logs.unbind_request(token)
    return chain.getvalue(), direct.getvalue()


HOSTILE_FIELDS: list[dict[str, Any]] = [
    {
        "correlation_id": "cid-1",
        "method": "GET",
        "path": "/api/v1/settings",
        "status": 200,
        "duration_ms": 1.5,
    },
    {
        "correlation_id": "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl",
        "method": "PATCH",
        "path": '/api/v1/settings/a"b\\c/Bearer sekrit/pw: postgresql://u:pw-one@h/db password=pw-two é',
        "status": 401,
        "duration_ms": 0.123,
    },
]


@pytest.mark.parametrize("fields", HOSTILE_FIELDS)
def test_the_access_line_is_what_the_processor_chain_would_write(fields: dict[str, Any]) -> None:
    chain, direct = _chain_and_direct("json", **fields)
    assert direct.endswith("\n")
    assert direct.count("\n") == 1
    chain_line, direct_line = json.loads(chain), json.loads(direct)
    assert list(direct_line) == list(chain_line)  # same keys, same order
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z", direct_line["timestamp"])
    assert {**direct_line, "timestamp": None} == {**chain_line, "timestamp": None}
    for secret in ("sekrit", "pw-one", "pw-two", "c2lnbmF0dXJl"):
        assert secret not in direct


def test_the_console_access_line_goes_through_the_processor_chain() -> None:
    chain, direct = _chain_and_direct("console", **HOSTILE_FIELDS[1])
    # Same line but for the timestamp at its start.
    assert direct.split(" ", 1)[1] == chain.split(" ", 1)[1]
    assert "sekrit" not in direct


def test_no_access_line_above_info() -> None:
    stream = io.StringIO()
    logs.AccessLog(build_logger(stream=stream, level="WARNING"), level="WARNING", stream=stream).write(
        method="GET", path="/", status=200, duration_ms=1.0
    )
    assert stream.getvalue() == ""


@pytest.mark.parametrize(
    ("value", "redacted"),
    [
        ("BEARER abc", "Bearer [redacted]"),
        ("x eyJabcdef.ghi.jkl y", "x [redacted] y"),
        ("PassWord = 'a b'", "PassWord = [redacted]"),
        ("PWD=x&a=b", "PWD=[redacted]&a=b"),
        ("https://user:pw@host/x", "https://user:[redacted]@host/x"),
        ("/api/v1/settings/theme", "/api/v1/settings/theme"),
    ],
)
def test_redaction_whatever_the_case(value: str, redacted: str) -> None:
    stream = io.StringIO()
    build_logger(stream=stream).info("x", value=value)
    assert json.loads(stream.getvalue())["value"] == redacted
