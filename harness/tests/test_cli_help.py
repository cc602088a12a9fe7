"""``python -m harness --help`` pins the one CLI: its commands, their one-line help, each one's options.

A command added, renamed or dropped, or an option changed, fails here first; update the tables with
the docs (README, docs/local-development.md) that show the command.
"""

from __future__ import annotations

import subprocess
import sys

import pytest
import typer
from typer.testing import CliRunner

from harness.cli.app import app

COMMANDS = {
    "up": "Start the whole stack, print its URLs and a demo bearer token; stay until Ctrl-C unless --detach.",
    "down": "Stop exactly what `up` started (by PID, checked against each process's start time).",
    "status": "A table of the services: PID, URL, whether the process runs and its health check passes.",
    "logs": "Print the end of a service's log (`.harness/logs/<service>.log`).",
    "flip": "Restart only the API with the other DATA_BACKEND; PostgreSQL and RTDB keep running, untouched.",
    "compose": "Write compose.local.yaml from the stack description (the same services as --runtime docker).",
    "token": "Print a fresh 12-hour bearer token for the demo tenant of the running stack.",
    "stack-env": (
        "Print shell exports of the stack's variables for admin tools (SUPABASE_DB_URL is the superuser's)."
    ),
    "pgtap": "Lint, advisors, migration no-op check and pg_prove on a throwaway PostgreSQL (`make pgtap`).",
    "bench": "Print PostgreSQL fixture timings: cold start, start from a snapshot, per-test database.",
    "env": "Write services/api/.env from `supabase status -o json`; no value is printed.",
    "bootstrap-check": (
        "Run .ci/run on a fresh clone of a commit in a fresh Debian 12 container (Docker, ~11 min)."
    ),
}

OPTIONS = {
    "up": ["--backend", "--runtime", "--detach", "--api-workers", "--api-env"],
    "down": [],
    "status": [],
    "logs": ["--lines", "--follow"],
    "flip": ["--backend", "--api-env", "--backfill"],
    "compose": ["--secrets"],
    "token": [],
    "stack-env": [],
    "pgtap": [],
    "bench": ["--databases"],
    "env": ["--status-json", "--env-file", "--force", "--supabase-cli", "--db-user"],
    "bootstrap-check": ["--shared", "--timeout", "--commit", "--keep"],
}


def _command(name: str) -> typer.core.TyperCommand:
    group = typer.main.get_command(app)
    assert isinstance(group, typer.core.TyperGroup)
    context = group.make_context("python -m harness", [], resilient_parsing=True)
    assert group.list_commands(context) == list(COMMANDS)
    command = group.get_command(context, name)
    assert isinstance(command, typer.core.TyperCommand)
    return command


def test_the_commands_and_their_one_line_help() -> None:
    for name, help_line in COMMANDS.items():
        command_help = _command(name).help
        assert command_help is not None
        assert command_help.strip() == help_line


def test_python_m_harness_help_lists_every_command() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "harness", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={"COLUMNS": "200", "PATH": "/usr/bin:/bin", "NO_COLOR": "1"},
    )
    assert result.returncode == 0, result.stderr
    assert "Usage: python -m harness [OPTIONS] COMMAND [ARGS]..." in result.stdout
    for panel in ("Local stack", "Database", "Machine setup"):
        assert panel in result.stdout
    for name, help_line in COMMANDS.items():
        assert f" {name} " in result.stdout
        assert help_line in result.stdout


@pytest.mark.parametrize("name", list(OPTIONS))
def test_each_command_help_shows_its_options(name: str) -> None:
    declared = [opt for param in _command(name).params for opt in param.opts if opt.startswith("--")]
    assert declared == OPTIONS[name]
    result = CliRunner().invoke(app, [name, "--help"], env={"COLUMNS": "200", "NO_COLOR": "1"})
    assert result.exit_code == 0, result.output
    assert f"Usage: python -m harness {name} [OPTIONS]" in result.output
    for option in OPTIONS[name]:
        assert option in result.output
