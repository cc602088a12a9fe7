"""Agents, pairing codes and commands under real concurrency and across connections, as the API calls
them: ``botmox_api`` (no BYPASSRLS), autocommit, one ``botmox.api_agent_*`` statement per call.

- Racing registrations with one pairing code, racing results for one command, and enqueues racing a
  revoke: exactly one winner, the losers refused with their SQLSTATE, nothing half-written.
- Delivery across API workers: a listener on ``botmox_agent_commands`` (another connection, as another
  worker would hold) gets ids only, at commit, and nothing for a refused call.
"""

from __future__ import annotations

import hashlib
import json
import threading
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import psycopg
import pytest
from psycopg.rows import dict_row
from psycopg_pool import ConnectionPool

from harness.postgres.migrated import PgDatabase

pytestmark = pytest.mark.integration

Row = dict[str, Any]
Pool = ConnectionPool[psycopg.Connection[Row]]

TENANT = "agents-tenant"
RACERS = 20
BARRIER_TIMEOUT_S = 30.0
NOTIFY_TIMEOUT_S = 10.0
CHANNEL = "botmox_agent_commands"
# Something that must never appear in a notification: the params travel only in the row.
PARAMS_MARKER = "params-never-in-a-notification"


def _claims(sub: str = "alice", tenant: str = TENANT) -> str:
    return json.dumps({"sub": sub, "app_metadata": {"tenant_id": tenant}})


def _digest(secret: str) -> bytes:
    return hashlib.sha256(secret.encode()).digest()


@pytest.fixture
def api_pool(pg_database: PgDatabase) -> Iterator[Pool]:
    pool: Pool = ConnectionPool(
        pg_database.api_dsn,
        min_size=RACERS,
        max_size=RACERS,
        kwargs={"row_factory": dict_row, "autocommit": True},
        connection_class=psycopg.Connection[Row],
        open=True,
        timeout=60,
    )
    try:
        pool.wait(timeout=60)
        yield pool
    finally:
        pool.close()


def _one(pool: Pool, statement: str, arguments: tuple[object, ...]) -> Row:
    with pool.connection() as connection:
        row = connection.execute(statement, arguments).fetchone()
    assert row is not None
    return row


def _pair(pool: Pool, code: str) -> None:
    _one(pool, "select * from botmox.api_agent_pairing_create(%s, %s)", (_claims(), _digest(code)))


def _register(pool: Pool, code: str, credential: str, name: str) -> uuid.UUID:
    row = _one(
        pool,
        "select * from botmox.api_agent_register(%s, %s, %s, '1.0.0', %s::jsonb)",
        (_digest(code), _digest(credential), name, json.dumps(["syncthing.status", "proxmox.vm.start"])),
    )
    agent_id = row["agent_id"]
    assert isinstance(agent_id, uuid.UUID)
    return agent_id


def _connected_agent(pool: Pool, name: str) -> tuple[uuid.UUID, str]:
    code, credential = f"code-{name}", f"credential-{name}"
    _pair(pool, code)
    agent_id = _register(pool, code, credential, name)
    _one(
        pool,
        "select * from botmox.api_agent_connect(%s, %s, %s, null, null)",
        (agent_id, _digest(credential), uuid.uuid4()),
    )
    return agent_id, credential


def _enqueue(pool: Pool, agent_id: uuid.UUID) -> uuid.UUID:
    row = _one(
        pool,
        "select id from botmox.api_agent_command_enqueue(%s, %s, 'proxmox.vm.start', %s::jsonb, 60, 30)",
        (_claims(), agent_id, json.dumps({"vmid": 100, "note": PARAMS_MARKER})),
    )
    command_id = row["id"]
    assert isinstance(command_id, uuid.UUID)
    return command_id


def _race(pool: Pool, barrier: threading.Barrier, statement: str, arguments: tuple[object, ...]) -> Row | str:
    """One racer: its row, or the SQLSTATE it was refused with."""
    with pool.connection() as connection:
        barrier.wait(timeout=BARRIER_TIMEOUT_S)
        try:
            row = connection.execute(statement, arguments).fetchone()
        except psycopg.Error as error:
            return error.sqlstate or "?"
    assert row is not None
    return row


def _run_race(pool: Pool, racers: list[tuple[str, tuple[object, ...]]]) -> list[Row | str]:
    barrier = threading.Barrier(len(racers))
    with ThreadPoolExecutor(max_workers=len(racers)) as executor:
        return list(executor.map(lambda racer: _race(pool, barrier, *racer), racers))


def _admin_value(database: PgDatabase, query: str, arguments: tuple[object, ...] = ()) -> Any:
    with psycopg.connect(database.admin_dsn) as connection:
        row = connection.execute(query, arguments).fetchone()
    assert row is not None
    return row[0]


def test_20_registrations_racing_for_one_code_make_one_agent(api_pool: Pool, pg_database: PgDatabase) -> None:
    _pair(api_pool, "the-code")
    statement = "select * from botmox.api_agent_register(%s, %s, %s, '1.0.0', '[]'::jsonb)"
    outcomes = _run_race(
        api_pool,
        [
            (statement, (_digest("the-code"), _digest(f"credential-{index}"), f"racer-{index}"))
            for index in range(RACERS)
        ],
    )

    winners = [outcome for outcome in outcomes if not isinstance(outcome, str)]
    assert len(winners) == 1
    assert outcomes.count("BM401") == RACERS - 1
    winner = winners[0]
    assert winner["tenant_id"] == TENANT
    assert _admin_value(pg_database, "select count(*) from public.agents") == 1
    stored = _admin_value(
        pg_database, "select credential_hash from public.agents where id = %s", (winner["agent_id"],)
    )
    assert bytes(stored) == _digest(f"credential-{outcomes.index(winner)}")
    assert (
        _admin_value(pg_database, "select count(*) from public.agent_pairings where consumed_at is not null")
        == 1
    )


def test_20_results_racing_for_one_command_store_one(api_pool: Pool, pg_database: PgDatabase) -> None:
    agent_id, credential = _connected_agent(api_pool, "pve-1")
    command_id = _enqueue(api_pool, agent_id)
    _one(
        api_pool,
        "select * from botmox.api_agent_command_ack(%s, %s, %s)",
        (agent_id, _digest(credential), command_id),
    )
    statement = "select * from botmox.api_agent_command_result(%s, %s, %s, %s, %s::jsonb, %s, %s)"

    def result(index: int) -> tuple[str, tuple[object, ...]]:
        ok = index % 2 == 0
        data = json.dumps({"racer": index}) if ok else None
        error = (None, None) if ok else ("E_RACER", f"racer {index}")
        return statement, (agent_id, _digest(credential), command_id, ok, data, *error)

    outcomes = _run_race(api_pool, [result(index) for index in range(RACERS)])

    winners = [outcome for outcome in outcomes if not isinstance(outcome, str)]
    assert len(winners) == 1
    assert outcomes.count("BM409") == RACERS - 1
    winner = winners[0]
    index = outcomes.index(winner)
    stored = _one(
        api_pool,
        "select status, result_data, error_code, error_message"
        " from botmox.api_agent_command_read(%s, %s, %s)",
        (_claims(), agent_id, command_id),
    )
    if index % 2 == 0:
        assert stored == {
            "status": "succeeded",
            "result_data": {"racer": index},
            "error_code": None,
            "error_message": None,
        }
    else:
        assert stored == {
            "status": "failed",
            "result_data": None,
            "error_code": "E_RACER",
            "error_message": f"racer {index}",
        }
    assert _admin_value(pg_database, "select count(*) from public.agent_commands") == 1


def test_enqueues_racing_a_revoke_leave_nothing_open(api_pool: Pool, pg_database: PgDatabase) -> None:
    agent_id, _ = _connected_agent(api_pool, "pve-1")
    enqueue = (
        "select id from botmox.api_agent_command_enqueue(%s, %s, 'syncthing.status', '{}'::jsonb, 60, 30)",
        (_claims(), agent_id),
    )
    revoke = ("select * from botmox.api_agent_revoke(%s, %s)", (_claims(), agent_id))
    outcomes = _run_race(api_pool, [enqueue] * (RACERS - 1) + [revoke])

    assert not isinstance(outcomes[-1], str)
    queued = [outcome for outcome in outcomes[:-1] if not isinstance(outcome, str)]
    assert all(outcome == "BM410" for outcome in outcomes[:-1] if isinstance(outcome, str))
    # Every enqueue that won before the revoke was cancelled by it; none is left for a revoked agent.
    assert outcomes[-1]["cancelled_commands"] == len(queued)
    assert (
        _admin_value(
            pg_database,
            "select count(*) from public.agent_commands"
            " where status in ('queued', 'sent', 'acked', 'running')",
        )
        == 0
    )


def _listener(database: PgDatabase) -> psycopg.Connection[tuple[Any, ...]]:
    connection = psycopg.connect(database.api_dsn, autocommit=True)
    connection.execute(f"listen {CHANNEL}")
    return connection


def _next_notification(listener: psycopg.Connection[tuple[Any, ...]]) -> psycopg.Notify | None:
    for notification in listener.notifies(timeout=NOTIFY_TIMEOUT_S, stop_after=1):
        return notification
    return None


def _drained(listener: psycopg.Connection[tuple[Any, ...]]) -> list[psycopg.Notify]:
    return list(listener.notifies(timeout=0.5))


def test_another_connection_is_notified_of_commands_cancels_and_revokes(
    api_pool: Pool, pg_database: PgDatabase
) -> None:
    agent_id, _ = _connected_agent(api_pool, "pve-1")
    with _listener(pg_database) as listener:
        command_id = _enqueue(api_pool, agent_id)
        notification = _next_notification(listener)
        assert notification is not None
        assert notification.channel == CHANNEL
        assert json.loads(notification.payload) == {
            "event": "command",
            "agent_id": str(agent_id),
            "command_id": str(command_id),
        }
        assert PARAMS_MARKER not in notification.payload

        _one(
            api_pool,
            "select * from botmox.api_agent_command_cancel(%s, %s, %s)",
            (_claims(), agent_id, command_id),
        )
        cancelled = _next_notification(listener)
        assert cancelled is not None
        assert json.loads(cancelled.payload) == {
            "event": "cancelled",
            "agent_id": str(agent_id),
            "command_id": str(command_id),
        }

        _one(api_pool, "select * from botmox.api_agent_revoke(%s, %s)", (_claims(), agent_id))
        revoked = _next_notification(listener)
        assert revoked is not None
        assert json.loads(revoked.payload) == {
            "event": "revoked",
            "agent_id": str(agent_id),
            "command_id": None,
        }
        # Revoking again changes nothing, so it tells nobody.
        _one(api_pool, "select * from botmox.api_agent_revoke(%s, %s)", (_claims(), agent_id))
        assert _drained(listener) == []


def test_a_refused_call_notifies_nobody(api_pool: Pool, pg_database: PgDatabase) -> None:
    agent_id, _ = _connected_agent(api_pool, "pve-1")
    refused: list[Callable[[psycopg.Connection[Row]], object]] = [
        # A kind the agent did not declare, then an offline agent: both refused after nothing was written.
        lambda connection: connection.execute(
            "select botmox.api_agent_command_enqueue(%s, %s, 'proxmox.vm.stop', '{}'::jsonb, 60, 30)",
            (_claims(), agent_id),
        ),
        lambda connection: connection.execute(
            "select botmox.api_agent_command_enqueue(%s, %s, 'syncthing.status', '{}'::jsonb, 60, 0)",
            (_claims(), agent_id),
        ),
        # Another tenant's revoke.
        lambda connection: connection.execute(
            "select botmox.api_agent_revoke(%s, %s)", (_claims("mallory", "other-tenant"), agent_id)
        ),
    ]
    with _listener(pg_database) as listener:
        states: list[str | None] = []
        for call in refused:
            with api_pool.connection() as connection, pytest.raises(psycopg.Error) as raised:
                call(connection)
            states.append(raised.value.sqlstate)
        assert states == ["BM422", "BM503", "BM404"]
        assert _drained(listener) == []
    assert _admin_value(pg_database, "select count(*) from public.agent_commands") == 0
    assert _admin_value(pg_database, "select revoked_at is null from public.agents") is True


def test_the_claims_end_with_the_statement(api_pool: Pool) -> None:
    """A pooled connection carries no claims into its next statement."""
    with api_pool.connection() as connection:
        connection.execute(
            "select * from botmox.api_agent_pairing_create(%s, %s)", (_claims(), _digest("scoped"))
        )
        row = connection.execute(
            "select coalesce(current_setting('request.jwt.claims', true), '') as claims"
        ).fetchone()
        assert row == {"claims": ""}
        assert connection.execute("select count(*) as n from public.agent_pairings").fetchone() == {"n": 0}
