"""botmox-backup and botmox-restore (the scripts the deploy installs) against a real PostgreSQL 15
migrated with the Supabase CLI: a restore from the nightly dump into a fresh database returns the
same storage policies."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import psycopg
import pytest

from deploy.tasks.backups import backup_context
from deploy.tasks.templating import hostscript, render
from harness.postgres.migrated import MigratedPostgres, PgDatabase

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(
        shutil.which("pg_dump") is None, reason="needs pg_dump and pg_restore (postgresql-client)"
    ),
]
POLICIES = (
    "select tenant_id, operational, sync_enabled, updated_by, version from public.storage_policies order by 1"
)


def _run(script: str, *arguments: str, config: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["sh", hostscript(script), *arguments],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
        env={**os.environ, "BOTMOX_BACKUP_CONFIG": str(config)},
    )


def _config(tmp_path: Path, database: PgDatabase) -> Path:
    secrets = tmp_path / "secrets.env"
    # The harness cluster trusts postgres on 127.0.0.1; the scripts still read the password from here.
    secrets.write_text("POSTGRES_PASSWORD=unused-by-a-trusting-cluster\n")
    context = backup_context({"backup_retention_days": 3})
    context.update(
        backup_dir=str(tmp_path / "backups"),
        db_port=database.port,
        db_name=database.name,
        secrets_file=str(secrets),
        textfile_dir=str(tmp_path / "textfile"),
    )
    (tmp_path / "textfile").mkdir()
    config = tmp_path / "backup.env"
    config.write_text(render("backups/backup.env.j2", **context))
    return config


def test_a_restore_from_the_nightly_dump_returns_the_same_storage_policies(
    tmp_path: Path, postgres_cluster: MigratedPostgres, pg_database: PgDatabase
) -> None:
    with psycopg.connect(pg_database.admin_dsn, autocommit=True) as connection:
        connection.execute(
            "insert into public.storage_policies (tenant_id, operational, sync_enabled, updated_by) values "
            "('acme', 'local', true, 'ops'), ('globex', 'cloud', false, 'ops')"
        )
        before = connection.execute(POLICIES).fetchall()
    config = _config(tmp_path, pg_database)

    backup = _run("botmox-backup", config=config)
    assert backup.returncode == 0, backup.stderr
    dumps = sorted((tmp_path / "backups").glob("botmox-*.dump"))
    assert len(dumps) == 1
    assert oct(dumps[0].stat().st_mode & 0o777) == "0o600"
    metrics = (tmp_path / "textfile" / "botmox_backup.prom").read_text()
    assert "botmox_backup_last_success_timestamp_seconds " in metrics

    restored = f"{pg_database.name}_restored"
    restore = _run("botmox-restore", restored, config=config)
    assert restore.returncode == 0, restore.stderr
    try:
        restored_dsn = postgres_cluster.describe(restored).admin_dsn
        with psycopg.connect(restored_dsn) as connection:
            assert connection.execute(POLICIES).fetchall() == before
        # The restore refuses to overwrite: the database must be new.
        again = _run("botmox-restore", str(dumps[0]), restored, config=config)
        assert again.returncode != 0
        assert "already exists" in again.stderr
    finally:
        with psycopg.connect(pg_database.admin_dsn, autocommit=True) as connection:
            connection.execute(f'drop database if exists "{restored}" with (force)')


def test_restore_refuses_a_database_name_it_would_have_to_quote(
    tmp_path: Path, pg_database: PgDatabase
) -> None:
    result = _run("botmox-restore", "x.dump", "Bad-Name", config=_config(tmp_path, pg_database))
    assert result.returncode == 2
    assert "a-z, 0-9 and _ only" in result.stderr
