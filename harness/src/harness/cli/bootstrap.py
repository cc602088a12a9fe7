"""``python -m harness env|bootstrap-check``: a machine's setup, written (env) and checked from scratch."""

from __future__ import annotations

import enum
import sys
from pathlib import Path
from typing import Annotated

import typer

from harness.bootstrap_check import DEFAULT_TIMEOUT_S
from harness.bootstrap_check import run as run_bootstrap_check
from harness.bootstrap_env import API_ROLE, DEFAULT_ENV_FILE, BootstrapError, write_api_env
from harness.postgres.supabase import PINNED_CLI

EXIT_BOOTSTRAP_ERROR = 2


class DbUser(enum.StrEnum):
    api = API_ROLE
    postgres = "postgres"


def env(
    status_json: Annotated[
        Path | None, typer.Option(help="Read this `supabase status -o json` output instead.")
    ] = None,
    env_file: Annotated[Path, typer.Option(help="The env file to write.")] = DEFAULT_ENV_FILE,
    force: Annotated[
        bool, typer.Option("--force", help="Also rewrite a file that targets a non-local stack.")
    ] = False,
    supabase_cli: Annotated[
        Path | None,
        typer.Option(help=f"The CLI to run (default: $SUPABASE_CLI, else {PINNED_CLI}, else PATH)."),
    ] = None,
    db_user: Annotated[
        DbUser, typer.Option(help=f"Who SUPABASE_DB_URL logs in as ({API_ROLE} gets a fresh password).")
    ] = DbUser.api,
) -> None:
    """Write services/api/.env from `supabase status -o json`; no value is printed."""
    try:
        update = write_api_env(
            env_file, status_json=status_json, supabase_cli=supabase_cli, db_user=db_user.value, force=force
        )
    except BootstrapError as error:
        print(f"bootstrap-env: {error}", file=sys.stderr)
        raise typer.Exit(EXIT_BOOTSTRAP_ERROR) from None
    print(f"bootstrap-env: wrote {env_file} (mode 0600)")
    for label, keys in (
        ("added", update.added),
        ("changed", update.changed),
        ("unchanged", update.unchanged),
    ):
        if keys:
            print(f"  {label}: {', '.join(keys)}")


def bootstrap_check(
    shared: Annotated[
        Path | None, typer.Option(help="The shared directory to copy beside the clone.")
    ] = None,
    timeout: Annotated[float, typer.Option(help="Seconds before the run is stopped.")] = DEFAULT_TIMEOUT_S,
    commit: Annotated[str, typer.Option(help="The commit to check.")] = "HEAD",
    keep: Annotated[
        bool, typer.Option("--keep", help="Keep the clone and inner Docker root afterwards.")
    ] = False,
) -> None:
    """Run .ci/run on a fresh clone of a commit in a fresh Debian 12 container (Docker, ~11 min)."""
    raise typer.Exit(run_bootstrap_check(shared, timeout, commit, keep=keep))
