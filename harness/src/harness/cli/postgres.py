"""``python -m harness pgtap|bench``: the database gates and figures of ``harness.postgres.migrated``."""

from __future__ import annotations

from typing import Annotated

import typer

from harness.postgres.migrated import run_bench, run_pgtap_gates


def pgtap() -> None:
    """Lint, advisors, migration no-op check and pg_prove on a throwaway PostgreSQL (`make pgtap`)."""
    raise typer.Exit(run_pgtap_gates())


def bench(
    databases: Annotated[int, typer.Option(min=1, help="Per-test databases created and dropped.")] = 20,
) -> None:
    """Print PostgreSQL fixture timings: cold start, start from a snapshot, per-test database."""
    raise typer.Exit(run_bench(databases))
