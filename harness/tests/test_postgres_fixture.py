"""The throwaway PostgreSQL: per-test databases, roles, restart on the same port, stop by PID."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import LiteralString

import psycopg
import pytest

from harness.postgres.migrated import API_ROLE, MigratedPostgres, PgDatabase, PostgresCluster, PrivatePostgres

pytestmark = pytest.mark.integration


def _process_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _scalar(dsn: str, query: LiteralString) -> object:
    with psycopg.connect(dsn) as connection:
        row = connection.execute(query).fetchone()
    assert row is not None
    return row[0]


def test_pg_database_is_migrated_and_api_dsn_is_the_restricted_role(
    postgres_cluster: MigratedPostgres, pg_database: PgDatabase
) -> None:
    assert _scalar(pg_database.admin_dsn, "select current_database()") == pg_database.name
    assert _scalar(pg_database.api_dsn, "select current_user") == API_ROLE
    powers = "select rolsuper or rolbypassrls from pg_roles where rolname = current_user"
    assert _scalar(pg_database.api_dsn, powers) is False
    migrations = len(list(postgres_cluster.cli.migrations_dir.glob("*.sql")))
    assert (
        _scalar(pg_database.admin_dsn, "select count(*) from supabase_migrations.schema_migrations")
        == migrations
    )
    assert _scalar(pg_database.admin_dsn, "show listen_addresses") == "127.0.0.1"


def test_api_role_needs_its_password(pg_database: PgDatabase) -> None:
    wrong = pg_database.api_dsn.replace(pg_database.api_password, "not-the-password")
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        psycopg.connect(wrong).close()


def test_each_test_gets_a_fresh_database(postgres_cluster: MigratedPostgres) -> None:
    with postgres_cluster.database() as first, postgres_cluster.database() as second:
        assert first.name != second.name
        with psycopg.connect(first.admin_dsn) as connection:
            connection.execute(
                "insert into public.storage_policies (tenant_id, updated_by) values ('only-in-first', 'u')"
            )
        assert _scalar(first.admin_dsn, "select count(*) from public.storage_policies") == 1
        assert _scalar(second.admin_dsn, "select count(*) from public.storage_policies") == 0
    names = _scalar(postgres_cluster.cluster.dsn(), "select array_agg(datname::text) from pg_database")
    assert isinstance(names, list)
    assert first.name not in names
    assert second.name not in names


def test_postgres_private_stops_and_starts_on_the_same_port_keeping_data(
    postgres_private: PrivatePostgres,
) -> None:
    database = postgres_private.database
    with psycopg.connect(database.admin_dsn) as connection:
        connection.execute(
            "insert into public.storage_policies (tenant_id, operational, updated_by)"
            " values ('kept', 'local', 'u')"
        )
    first_pid = postgres_private.server.cluster.pid
    assert first_pid is not None
    assert postgres_private.server.cluster.postmaster_pid_file() == first_pid

    postgres_private.stop()
    assert not postgres_private.running
    assert not _process_exists(first_pid)
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(database.api_dsn, connect_timeout=2).close()

    postgres_private.start()
    assert postgres_private.server.port == database.port
    assert postgres_private.server.cluster.pid not in (None, first_pid)
    kept = "select operational from public.storage_policies where tenant_id = 'kept'"
    assert _scalar(database.admin_dsn, kept) == "local"


def test_cluster_is_stopped_by_pid_and_removed_when_the_body_raises() -> None:
    started: list[PostgresCluster] = []

    def failing_body() -> None:
        with PostgresCluster() as cluster:
            started.append(cluster)
            cluster.initdb()
            cluster.start()
            raise RuntimeError("test body failed")

    with pytest.raises(RuntimeError, match="test body failed"):
        failing_body()
    (cluster,) = started
    assert cluster.postmaster_pid_file() is None
    assert not cluster.running
    assert not cluster.root.exists()


def test_stop_ends_exactly_the_postmaster_pid() -> None:
    with PostgresCluster() as cluster:
        cluster.initdb()
        cluster.start()
        pid = cluster.pid
        assert pid is not None
        assert cluster.postmaster_pid_file() == pid
        cluster.stop()
        assert not _process_exists(pid)
        assert cluster.postmaster_pid_file() is None


def test_fixtures_stop_the_server_when_a_test_fails(tmp_path: Path) -> None:
    """Run a failing test in a child pytest; its servers must be gone and their temp dirs removed."""
    record = tmp_path / "record.txt"
    (tmp_path / "test_inner.py").write_text(
        textwrap.dedent(
            f"""
            from pathlib import Path

            def test_fails(pg_database, postgres_cluster, postgres_private):
                cluster = postgres_cluster.cluster
                private = postgres_private.server.cluster
                Path({str(record)!r}).write_text(
                    f"{{cluster.pid}} {{cluster.root}} {{private.pid}} {{private.root}}")
                raise AssertionError("deliberate failure")
            """
        )
    )
    (tmp_path / "pytest.ini").write_text("[pytest]\n")
    completed = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "harness.fixtures.postgres",
            "-p",
            "no:cacheprovider",
            str(tmp_path / "test_inner.py"),
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert completed.returncode == 1, completed.stdout + completed.stderr
    assert "deliberate failure" in completed.stdout
    session_pid, session_root, private_pid, private_root = record.read_text().split()
    for pid, root in ((session_pid, session_root), (private_pid, private_root)):
        assert not _process_exists(int(pid))
        assert not Path(root).exists()
