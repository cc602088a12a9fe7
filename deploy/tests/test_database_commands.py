"""The deploy's database commands and facts, run for real against a bare PostgreSQL 15 (the db-only
profile's case): platform baseline + ``supabase migration up``, the roles' passwords from the
secrets file, and the facts that make a re-run a no-change."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from deploy.tasks.facts import AppliedMigrations, RoleLogsIn
from deploy.tasks.migrations import (
    SUPABASE_DIR,
    Database,
    local_migrations,
    migrate_command,
    migration_version,
    platform_baseline_sql,
    role_password_command,
)
from deploy.tasks.observability import monitor_role_command
from deploy.tasks.templating import render
from harness.postgres.cluster import PostgresCluster
from harness.postgres.supabase import find_project_root, find_supabase_cli

pytestmark = pytest.mark.integration


def _sh(command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["sh", "-c", command], capture_output=True, text=True, check=False, timeout=180)


@pytest.fixture
def bare_cluster() -> Iterator[PostgresCluster]:
    # Trusting on 127.0.0.1 like the harness's clusters, except for the roles whose passwords the
    # deploy sets: those must log in with them.
    cluster = PostgresCluster(password_users=("botmox_api", "botmox_monitor"))
    try:
        cluster.initdb()
        cluster.start()
        yield cluster
    finally:
        cluster.close()


@pytest.fixture
def cli() -> Path:
    try:
        return find_supabase_cli(find_project_root())
    except FileNotFoundError as error:
        pytest.skip(str(error))


def _workdir(tmp_path: Path) -> Path:
    workdir = tmp_path / "supabase-project"
    shutil.copytree(SUPABASE_DIR / "migrations", workdir / "supabase" / "migrations")
    shutil.copy(SUPABASE_DIR / "config.toml", workdir / "supabase" / "config.toml")
    baseline = render("supabase/platform-baseline.sql.j2", baseline=platform_baseline_sql())
    (workdir / "platform-baseline.sql").write_text(baseline)
    return workdir


def test_migrations_and_role_passwords_on_a_bare_postgres(
    tmp_path: Path, bare_cluster: PostgresCluster, cli: Path
) -> None:
    bare_cluster.create_database("fresh")
    secrets = tmp_path / "control-plane.env"
    secrets.write_text(
        "POSTGRES_PASSWORD=trusted-here\nBOTMOX_DB_API_PASSWORD=api-Secret-1\nMONITOR_DB_PASSWORD=mon-Secret-1\n"
    )
    database = Database(port=bare_cluster.port, name="fresh", secrets_file=str(secrets))
    applied = AppliedMigrations()
    logs_in = RoleLogsIn()

    def applied_versions() -> list[str]:
        command = applied.command(secrets_file=str(secrets), port=database.port, database="fresh")
        return applied.process(_sh(command).stdout.splitlines())

    def api_logs_in() -> bool:
        command = logs_in.command(
            secrets_file=str(secrets),
            port=database.port,
            role="botmox_api",
            variable="BOTMOX_DB_API_PASSWORD",
            database="fresh",
        )
        return logs_in.process(_sh(command).stdout.splitlines())

    assert applied_versions() == []
    workdir = _workdir(tmp_path)
    command = migrate_command("db-only", database, workdir=str(workdir), cli=str(cli))
    assert "trusted-here" not in command
    result = _sh(command)
    assert result.returncode == 0, result.stdout + result.stderr
    assert applied_versions() == [migration_version(m) for m in local_migrations()]

    assert not api_logs_in()
    result = _sh(role_password_command("botmox_api", "BOTMOX_DB_API_PASSWORD", database))
    assert result.returncode == 0, result.stderr
    assert api_logs_in()

    # Everything applied: a second run changes nothing and succeeds.
    again = _sh(command)
    assert again.returncode == 0, again.stdout + again.stderr

    for _ in range(2):  # the monitoring role: created once, its password set each time
        result = _sh(monitor_role_command(database))
        assert result.returncode == 0, result.stderr
    monitor = logs_in.command(
        secrets_file=str(secrets),
        port=database.port,
        role="botmox_monitor",
        variable="MONITOR_DB_PASSWORD",
        database="fresh",
    )
    assert logs_in.process(_sh(monitor).stdout.splitlines())
