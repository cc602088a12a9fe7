"""The storage-policy SQL functions under real concurrency, as the API calls them.

Connections log in as ``botmox_api`` (no BYPASSRLS) and declare the tenant and the caller (the
author the database records) in every transaction, exactly like the API's SQL transport; the default
READ COMMITTED isolation applies.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import psycopg
import pytest
from psycopg.rows import dict_row
from psycopg_pool import ConnectionPool

from harness.postgres.migrated import PgDatabase

pytestmark = pytest.mark.integration

TENANT = "race-tenant"
POOL_SIZE = 20
MERGES = 200
RACERS = 20
BARRIER_TIMEOUT_S = 30.0


@dataclass(frozen=True, slots=True)
class Written:
    """What one merge set, and the version the database gave that write."""

    field: str
    value: object
    version: int


def _declare(connection: psycopg.Connection[dict[str, object]], caller: str) -> None:
    claims = json.dumps({"sub": caller, "app_metadata": {"tenant_id": TENANT}})
    connection.execute("select set_config('request.jwt.claims', %s, true)", (claims,))


@pytest.fixture
def api_pool(pg_database: PgDatabase) -> Iterator[ConnectionPool[psycopg.Connection[dict[str, object]]]]:
    pool: ConnectionPool[psycopg.Connection[dict[str, object]]] = ConnectionPool(
        pg_database.api_dsn,
        min_size=POOL_SIZE,
        max_size=POOL_SIZE,
        kwargs={"row_factory": dict_row},
        connection_class=psycopg.Connection[dict[str, object]],
        open=True,
        timeout=60,
    )
    try:
        pool.wait(timeout=60)
        yield pool
    finally:
        pool.close()


def _merge(pool: ConnectionPool[psycopg.Connection[dict[str, object]]], index: int) -> Written:
    """Merge #index: even ones set ``operational``, odd ones ``sync_enabled``; every one a new author."""
    field = "operational" if index % 2 == 0 else "sync_enabled"
    value: object = ("local", "cloud")[(index // 2) % 2] if field == "operational" else (index // 2) % 2 == 0
    with pool.connection() as connection, connection.transaction():
        _declare(connection, f"writer-{index}")
        row = connection.execute(
            f"select * from public.storage_policy_merge(%s, p_{field} => %s)",  # noqa: S608 - fixed names
            (TENANT, value),
        ).fetchone()
    assert row is not None
    assert row[field] == value
    assert row["updated_by"] == f"writer-{index}"
    version = row["version"]
    assert isinstance(version, int)
    return Written(field, value, version)


def _read(pool: ConnectionPool[psycopg.Connection[dict[str, object]]]) -> dict[str, object]:
    with pool.connection() as connection, connection.transaction():
        _declare(connection, "reader")
        row = connection.execute("select * from public.storage_policy_read(%s)", (TENANT,)).fetchone()
    assert row is not None
    return row


def test_200_concurrent_merges_lose_no_update(
    api_pool: ConnectionPool[psycopg.Connection[dict[str, object]]],
) -> None:
    with ThreadPoolExecutor(max_workers=POOL_SIZE) as executor:
        writes = list(executor.map(lambda index: _merge(api_pool, index), range(MERGES)))

    # The first merge created the row (version 1); each later one bumped it exactly once.
    assert sorted(write.version for write in writes) == list(range(1, MERGES + 1))
    final = _read(api_pool)
    assert final["version"] == MERGES
    # Last writer wins per field: the stored value is the one of the highest-versioned write of it.
    for field in ("operational", "sync_enabled"):
        last = max((write for write in writes if write.field == field), key=lambda write: write.version)
        assert final[field] == last.value, field
    newest = max(writes, key=lambda write: write.version)
    assert final["updated_by"] == f"writer-{writes.index(newest)}"
    assert final["secrets"] == "local-only"


def test_200_concurrent_merges_on_an_existing_row(
    api_pool: ConnectionPool[psycopg.Connection[dict[str, object]]],
) -> None:
    with api_pool.connection() as connection, connection.transaction():
        _declare(connection, "seed")
        connection.execute("select public.storage_policy_replace(%s)", (TENANT,))

    with ThreadPoolExecutor(max_workers=POOL_SIZE) as executor:
        writes = list(executor.map(lambda index: _merge(api_pool, index), range(MERGES)))

    assert sorted(write.version for write in writes) == list(range(2, MERGES + 2))
    assert _read(api_pool)["version"] == MERGES + 1


def _race(
    pool: ConnectionPool[psycopg.Connection[dict[str, object]]],
    barrier: threading.Barrier,
    index: int,
    *,
    function: str,
    if_match: list[int] | None,
    if_exists: bool,
) -> int | str:
    """One racer: returns the new version, or the SQLSTATE it was refused with."""
    operational = ("local", "cloud")[index % 2]
    with pool.connection() as connection:
        barrier.wait(timeout=BARRIER_TIMEOUT_S)
        try:
            with connection.transaction():
                _declare(connection, f"racer-{index}")
                row = connection.execute(
                    f"select * from public.{function}(%s, p_operational => %s,"  # noqa: S608 - fixed names
                    " p_if_match => %s, p_if_exists => %s)",
                    (TENANT, operational, if_match, if_exists),
                ).fetchone()
        except psycopg.Error as error:
            return error.sqlstate or "?"
    assert row is not None
    version = row["version"]
    assert isinstance(version, int)
    return version


def _versions(outcomes: list[int | str]) -> list[int]:
    """The versions written; fails on any refusal."""
    refused = [outcome for outcome in outcomes if isinstance(outcome, str)]
    assert refused == []
    return [outcome for outcome in outcomes if isinstance(outcome, int)]


@pytest.mark.parametrize(
    ("function", "if_match", "if_exists"),
    [
        ("storage_policy_replace", [1], False),
        ("storage_policy_merge", [1], False),
        ("storage_policy_merge", None, True),
    ],
    ids=["replace-if-match-1", "merge-if-match-1", "merge-if-match-star"],
)
def test_20_racing_conditional_writes_have_exactly_one_winner(
    api_pool: ConnectionPool[psycopg.Connection[dict[str, object]]],
    function: str,
    if_match: list[int] | None,
    if_exists: bool,
) -> None:
    with api_pool.connection() as connection, connection.transaction():
        _declare(connection, "seed")
        connection.execute("select public.storage_policy_replace(%s)", (TENANT,))
    barrier = threading.Barrier(RACERS)

    with ThreadPoolExecutor(max_workers=RACERS) as executor:
        outcomes = list(
            executor.map(
                lambda index: _race(
                    api_pool, barrier, index, function=function, if_match=if_match, if_exists=if_exists
                ),
                range(RACERS),
            )
        )

    if if_exists:
        # If-Match: * matches whatever version is current, so every racer writes, serialized.
        assert sorted(_versions(outcomes)) == list(range(2, RACERS + 2))
        return
    winners = [outcome for outcome in outcomes if isinstance(outcome, int)]
    assert winners == [2]
    assert outcomes.count("BM412") == RACERS - 1
    assert _read(api_pool)["version"] == 2


def test_20_racing_creations_make_one_row(
    api_pool: ConnectionPool[psycopg.Connection[dict[str, object]]],
) -> None:
    """The "no row yet" race: unconditioned merges on a missing row all succeed, one creates it."""
    barrier = threading.Barrier(RACERS)
    with ThreadPoolExecutor(max_workers=RACERS) as executor:
        outcomes = list(
            executor.map(
                lambda index: _race(
                    api_pool, barrier, index, function="storage_policy_merge", if_match=None, if_exists=False
                ),
                range(RACERS),
            )
        )
    assert sorted(_versions(outcomes)) == list(range(1, RACERS + 1))
    assert _read(api_pool)["version"] == RACERS


def test_stale_version_reports_current_version(
    api_pool: ConnectionPool[psycopg.Connection[dict[str, object]]],
) -> None:
    with api_pool.connection() as connection, connection.transaction():
        _declare(connection, "seed")
        connection.execute("select public.storage_policy_replace(%s)", (TENANT,))
        connection.execute("select public.storage_policy_merge(%s, p_operational => 'local')", (TENANT,))

    with api_pool.connection() as connection, connection.transaction():
        _declare(connection, "late")
        with pytest.raises(psycopg.Error) as raised, connection.transaction():  # a savepoint
            connection.execute(
                "select public.storage_policy_merge(%s, p_operational => 'cloud', p_if_match => %s)",
                (TENANT, [1]),
            )
    assert raised.value.sqlstate == "BM412"
    assert raised.value.diag.message_primary == "storage policy version mismatch"
    assert raised.value.diag.message_detail == "current_version=2"
    final = _read(api_pool)
    assert (final["version"], final["operational"], final["updated_by"]) == (2, "local", "seed")
