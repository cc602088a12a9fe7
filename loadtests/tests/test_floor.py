"""The floor of ``make bench`` against a migrated PostgreSQL: it answers as the API does, and a tiny
wrk run (one second) through the bench's own Lua script gets only 2xx answers from it."""

from __future__ import annotations

import os
from pathlib import Path

import httpx
import pytest

from harness.fixtures.tools import require_tool
from harness.postgres.migrated import PgDatabase
from loadtests.bench import servers, tenants, wrk
from loadtests.reference import floor

pytestmark = pytest.mark.integration

SECRET = "floor-test-secret-of-at-least-32-chars"


def test_the_floor_serves_the_policy_and_takes_a_tiny_wrk_run(
    pg_database: PgDatabase, tmp_path: Path
) -> None:
    require_tool("wrk", "apt-get install wrk")
    population = tenants.mint(3, SECRET)
    floor_map = tenants.write_floor_map(population, tmp_path / "floor.json")
    tokens_file = tenants.write_tokens(population, tmp_path / "tokens.txt")
    first, second = population[0], population[1]
    with servers.floor_app(
        database=pg_database, tenants_map=floor_map, cpus=os.sched_getaffinity(0), log_dir=tmp_path
    ) as server:
        url = server.url + floor.POLICY_PATH
        with httpx.Client(trust_env=False, timeout=10) as client:
            assert client.get(url, headers={"Authorization": "Bearer not-a-tenant"}).status_code == 401
            empty = client.get(url, headers={"Authorization": f"Bearer {first.token}"})
            assert (empty.status_code, empty.json()) == (200, {"success": True, "data": None})

            written = client.patch(
                url, json={"operational": "local"}, headers={"Authorization": f"Bearer {first.token}"}
            )
            assert written.status_code == 200
            read = client.get(url, headers={"Authorization": f"Bearer {first.token}"})
            assert read.status_code == 200
            assert read.headers["etag"] == written.headers["etag"]
            document = read.json()["data"]
            assert document == written.json()["data"]
            assert document["operational"] == "local"
            assert document["secrets"] == "local-only"
            assert document["updated_by"] == first.uid
            # Row-level security: another tenant sees its own (absent) policy, not the first one's.
            other = client.get(url, headers={"Authorization": f"Bearer {second.token}"})
            assert other.json()["data"] is None

        run = wrk.run(
            url,
            tokens_file=tokens_file,
            method="GET",
            connections=2,
            seconds=1,
            cpu=None,
            server_pid=server.pid,
            log_dir=tmp_path,
        )
    assert run.requests > 0
    assert run.errors == 0
    assert run.conflicts == 0
    assert run.cpu_s >= 0.0
