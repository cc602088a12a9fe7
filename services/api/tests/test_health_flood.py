"""Health floods against the real stores: what the stores see, and what user traffic keeps.

Health needs no token and skips the rate limit, so its cost to the stores must not grow with the
number of health requests. A ``TcpRelay`` in front of PostgreSQL and the RTDB emulator counts the
readiness probes that really reach them, or holds user traffic back so that every connection of
the user pool (PostgreSQL) and of the user traffic's RTDB store is busy while health is asked. These
tests assert counts and answers, never durations (``benchmarks/storage_policy_rps.py
--health-flood`` measures latencies).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any, Final

import httpx
import psycopg
import pytest
from api_support import client_for, data, make_settings, user
from tcp_relay import PG_STATEMENT, Markers, PgStatements, relay

from botmox_api.config import ApiSettings
from botmox_api.stores._rtdb import READINESS_PATH

pytestmark = pytest.mark.integration

HEALTH_PATHS: Final = ("/api/v1/health", "/api/v1/health/ready")
FLOOD_REQUESTS: Final = 300
FLOOD_CONCURRENCY: Final = 50
RTDB_PROBE: Final = f"/{READINESS_PATH}.json".encode()
USER_POOL_SIZE: Final = 10  # SqlStoragePolicyStore's default; RTDB_MAX_CONNECTIONS in the rtdb test
BUSY_WAIT_S: Final = 15.0
HEALTH_CACHE_TTL_S: Final = 1.0


def _host_port(host: str) -> tuple[str, int]:
    name, port = host.rsplit(":", 1)
    return name, int(port)


def _settings(
    mode: str, rtdb_host: str, namespace: str, pg_dsn: str | None = None, **extra: object
) -> ApiSettings:
    overrides: dict[str, object] = {
        **extra,
        "health_cache_ttl_s": HEALTH_CACHE_TTL_S,
        "data_backend": mode,
        "firebase_database_url": f"https://{namespace}.firebaseio.com",
        "firebase_database_emulator_host": rtdb_host,
    }
    if pg_dsn is not None:
        overrides["supabase_db_url"] = pg_dsn
    return make_settings(**overrides)


async def _flood(client: httpx.AsyncClient, total: int = FLOOD_REQUESTS) -> list[httpx.Response]:
    """``total`` health requests, ``FLOOD_CONCURRENCY`` at a time, alternating the two paths."""
    pending = iter(range(total))
    responses: list[httpx.Response] = []

    async def worker() -> None:
        for number in pending:
            responses.append(await client.get(HEALTH_PATHS[number % 2]))

    await asyncio.gather(*(worker() for _ in range(FLOOD_CONCURRENCY)))
    return responses


def _all_ready(responses: list[httpx.Response], stores: tuple[str, ...]) -> None:
    """Every answer is 200 and says each of ``stores`` is ready."""
    assert [r.status_code for r in responses] == [200] * len(responses), {r.text for r in responses}
    for response in responses:
        body = data(response)
        for store in stores:
            ready = body["checks"][store]["ready"] if "checks" in body else body[f"{store}_ready"]
            assert ready is True, body


async def _until(condition: Callable[[], Awaitable[bool]], what: str) -> None:
    deadline = time.monotonic() + BUSY_WAIT_S
    while not await condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"not reached: {what}")
        await asyncio.sleep(0.02)


async def test_a_health_flood_costs_each_store_about_a_probe_per_second(
    rtdb_emulator: Any, rtdb_namespace: str, pg_database: Any
) -> None:
    pg_host, pg_port = "127.0.0.1", pg_database.port
    async with (
        relay(*_host_port(rtdb_emulator.host), Markers(RTDB_PROBE)) as rtdb,
        # The agent tunnel's listening session (LISTEN, on a connection of its own) is not a probe.
        relay(pg_host, pg_port, PgStatements(ignore_application="botmox-api-listener")) as sql,
    ):
        dsn = psycopg.conninfo.make_conninfo(pg_database.api_dsn, host=pg_host, port=sql.port)
        # No expiry sweep within the flood: its statement would be no probe either.
        settings = _settings("supabase", rtdb.host, rtdb_namespace, dsn, agent_sweep_interval_s=3600)
        async with client_for(settings) as client:
            began = time.monotonic()
            responses = await _flood(client)
            elapsed = time.monotonic() - began
        _all_ready(responses, ("supabase", "rtdb"))
        # One probe per store per TTL, counted from each answer: at most one more than the whole
        # TTLs the flood lasted, whatever the number of requests.
        allowed = int(elapsed / HEALTH_CACHE_TTL_S) + 1
        # Only health runs here, so every statement counted is part of a probe.
        seen = {"rtdb": rtdb.counts[RTDB_PROBE.decode()], "supabase": sql.counts[PG_STATEMENT]}
        assert seen["rtdb"] >= 1
        assert seen["supabase"] >= 1
        assert max(seen.values()) <= allowed, (
            f"{seen} probes for {FLOOD_REQUESTS} requests in {elapsed:.1f} s"
        )


async def test_health_answers_while_every_user_connection_of_the_pool_waits(
    rtdb_emulator: Any, rtdb_namespace: str, pg_database: Any
) -> None:
    tenant_a = user("tenant-a")
    settings = _settings("supabase", rtdb_emulator.host, rtdb_namespace, pg_database.api_dsn)
    async with (
        client_for(settings) as client,
        await psycopg.AsyncConnection.connect(pg_database.admin_dsn, autocommit=True) as admin,
        await psycopg.AsyncConnection.connect(pg_database.admin_dsn) as locker,
    ):
        policy = "/api/v1/settings/storage_policy"
        assert (
            await client.patch(policy, headers=tenant_a, json={"operational": "local"})
        ).status_code == 200
        # The tenant's row stays locked, so each user PATCH keeps its pool connection while it waits.
        await locker.execute("select 1 from public.storage_policies where tenant_id = 'tenant-a' for update")
        patches = [
            asyncio.create_task(
                client.patch(policy, headers=tenant_a, json={"sync": {"enabled": i % 2 == 0}})
            )
            for i in range(USER_POOL_SIZE)
        ]

        async def pool_all_waiting() -> bool:
            cursor = await admin.execute(
                "select count(*) from pg_stat_activity"
                " where application_name = 'botmox-api' and wait_event_type = 'Lock'"
            )
            row = await cursor.fetchone()
            return row is not None and row[0] == USER_POOL_SIZE

        try:
            await _until(pool_all_waiting, f"{USER_POOL_SIZE} user PATCHes waiting on the row lock")
            _all_ready(await _flood(client, 100), ("supabase", "rtdb"))
        finally:
            await locker.rollback()
        answers = await asyncio.gather(*patches)
    assert [a.status_code for a in answers] == [200] * USER_POOL_SIZE, [a.text for a in answers]


async def test_health_answers_while_every_user_connection_of_rtdb_waits(
    rtdb_emulator: Any, rtdb_namespace: str
) -> None:
    user_path = b"/tenants/"
    async with relay(*_host_port(rtdb_emulator.host), Markers(user_path)) as rtdb:
        settings = _settings("rtdb", rtdb.host, rtdb_namespace, rtdb_max_connections=USER_POOL_SIZE)
        async with client_for(settings) as client:
            headers = user("tenant-a")
            rtdb.hold(user_path)
            patches = [
                asyncio.create_task(
                    client.patch("/api/v1/settings/flood", headers=headers, json={f"k{i}": i})
                )
                for i in range(USER_POOL_SIZE)
            ]

            async def connections_all_waiting() -> bool:
                return rtdb.counts[user_path.decode()] >= USER_POOL_SIZE

            try:
                await _until(connections_all_waiting, f"{USER_POOL_SIZE} user requests held at the emulator")
                responses = await _flood(client, 100)
            finally:
                rtdb.release()
            answers = await asyncio.gather(*patches)
            node = data(await client.get("/api/v1/settings/flood", headers=headers))
    _all_ready(responses, ("rtdb",))
    assert [a.status_code for a in answers] == [200] * USER_POOL_SIZE, [a.text for a in answers]
    assert {key: node[key] for key in node if key != "updated_at"} == {
        f"k{i}": i for i in range(USER_POOL_SIZE)
    }
