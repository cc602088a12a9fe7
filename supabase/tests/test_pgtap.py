"""The pgTAP suite (supabase/tests/*.sql) run with pg_prove; a pgTAP failure fails pytest."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.postgres.migrated import MigratedPostgres

pytestmark = pytest.mark.integration


def test_pgtap_suite_passes(postgres_cluster: MigratedPostgres) -> None:
    files = sorted(postgres_cluster.cli.tests_dir.glob("*.sql"))
    assert len(files) >= 4, files
    result = postgres_cluster.run_pgtap(files, check=False)
    assert result.returncode == 0, result.output
    assert "All tests successful." in result.output
    assert f"Files={len(files)}," in result.output


def test_pg_prove_reports_a_failing_pgtap_file(postgres_cluster: MigratedPostgres, tmp_path: Path) -> None:
    """The wrapper above can fail: a false assertion makes pg_prove exit non-zero."""
    failing = tmp_path / "failing.sql"
    failing.write_text(
        "begin;\nselect plan(1);\n"
        "select is((select count(*) from public.storage_policies), 1::bigint, 'deliberately wrong');\n"
        "select * from finish();\nrollback;\n"
    )
    result = postgres_cluster.run_pgtap([failing], check=False)
    assert result.returncode != 0
    assert "not ok 1 - deliberately wrong" in result.output
