"""Migrations through the Supabase CLI: a second `migration up` is a no-op; lint and advisors are
clean, and both gates do fail on a schema that deserves it (so "clean" means something)."""

from __future__ import annotations

import subprocess

import psycopg
import pytest

from harness.postgres.cluster import pg_bin_dir
from harness.postgres.migrated import MigratedPostgres, PgDatabase

pytestmark = pytest.mark.integration


def _schema_dump(database: PgDatabase) -> str:
    completed = subprocess.run(
        [str(pg_bin_dir() / "pg_dump"), "--schema-only", "--no-owner", database.admin_dsn],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    # pg_dump >= 15.14 brackets the dump with \restrict <random key>; the key differs every run.
    lines = completed.stdout.splitlines()
    return "\n".join(line for line in lines if not line.startswith(("\\restrict", "\\unrestrict")))


def _applied(database: PgDatabase) -> list[tuple[object, ...]]:
    with psycopg.connect(database.admin_dsn) as connection:
        return connection.execute(
            "select version, name, statements from supabase_migrations.schema_migrations order by version"
        ).fetchall()


def test_every_migration_is_applied(postgres_cluster: MigratedPostgres, pg_database: PgDatabase) -> None:
    files = sorted(path.name.split("_", 1)[0] for path in postgres_cluster.cli.migrations_dir.glob("*.sql"))
    assert [row[0] for row in _applied(pg_database)] == files


def test_second_migration_up_is_a_no_op(postgres_cluster: MigratedPostgres, pg_database: PgDatabase) -> None:
    cli = postgres_cluster.cli
    listed = cli.migration_list(pg_database.admin_dsn).stdout
    applied = _applied(pg_database)
    schema = _schema_dump(pg_database)

    again = cli.migration_up(pg_database.admin_dsn)

    assert "Local database is up to date." in again.output
    assert "Applying migration" not in again.output
    assert cli.migration_list(pg_database.admin_dsn).stdout == listed
    assert _applied(pg_database) == applied
    assert _schema_dump(pg_database) == schema


def test_lint_is_clean(postgres_cluster: MigratedPostgres, pg_database: PgDatabase) -> None:
    result = postgres_cluster.lint(pg_database, check=False)
    assert result.returncode == 0, result.output
    assert "No schema errors found" in result.output


def test_advisors_are_clean(postgres_cluster: MigratedPostgres, pg_database: PgDatabase) -> None:
    result = postgres_cluster.advisors(pg_database, check=False)
    assert result.returncode == 0, result.output
    assert "No issues found" in result.output


def test_gates_fail_on_a_bad_schema(postgres_cluster: MigratedPostgres, pg_database: PgDatabase) -> None:
    with psycopg.connect(pg_database.admin_dsn, autocommit=True) as connection:
        # A public table without RLS (advisors: rls_disabled_in_public) and a PL/pgSQL function that
        # reads a column that does not exist (plpgsql_check, via db lint).
        connection.execute("create table public.no_rls (id bigint primary key)")
        connection.execute(
            "create function public.broken() returns bigint language plpgsql set search_path = '' as "
            "$$ begin return (select missing_column from public.no_rls); end $$"
        )
    advisors = postgres_cluster.advisors(pg_database, check=False)
    assert advisors.returncode != 0
    assert "rls_disabled_in_public" in advisors.output
    lint = postgres_cluster.lint(pg_database, check=False)
    assert lint.returncode != 0
    assert "missing_column" in lint.output


def test_migration_on_bare_postgres_creates_the_roles() -> None:
    """Without Supabase's platform baseline the migration itself creates the missing roles."""
    with MigratedPostgres.start(platform=False) as bare, bare.database("bare") as database:
        with psycopg.connect(database.admin_dsn) as connection:
            roles = connection.execute(
                "select rolname, rolcanlogin, rolsuper, rolbypassrls from pg_roles"
                " where rolname in"
                " ('anon', 'authenticated', 'service_role', 'botmox_api', 'botmox_policy_writer',"
                " 'botmox_agent_writer', 'botmox_agent_link')"
                " order by rolname"
            ).fetchall()
        assert roles == [
            ("anon", False, False, False),
            ("authenticated", False, False, False),
            ("botmox_agent_link", False, False, False),
            ("botmox_agent_writer", False, False, False),
            ("botmox_api", True, False, False),
            ("botmox_policy_writer", False, False, False),
            ("service_role", False, False, True),
        ]
        assert bare.lint(database, check=False).returncode == 0
        assert bare.advisors(database, check=False).returncode == 0
        assert bare.run_pgtap(check=False).returncode == 0


def test_seed_adds_the_demo_tenant(postgres_cluster: MigratedPostgres, pg_database: PgDatabase) -> None:
    seed = (postgres_cluster.cli.project_root / "supabase" / "seed.sql").read_text()
    with psycopg.connect(pg_database.admin_dsn, autocommit=True) as connection:
        connection.execute(seed)
        connection.execute(seed)  # twice: the seed is idempotent
        row = connection.execute(
            "select operational, sync_enabled, version, secrets from public.storage_policies"
            " where tenant_id = 'demo'"
        ).fetchone()
    assert row == ("cloud", False, 1, "local-only")
