"""The one typer app behind ``python -m harness``: every command, grouped in ``--help`` by panel."""

from __future__ import annotations

import typer

from harness.cli import bootstrap, postgres, stack

app = typer.Typer(
    name="python -m harness",
    help="The Bot-Mox stack on this machine: PostgreSQL (Supabase's database), RTDB emulator, API, frontend.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

for command in (stack.up, stack.down, stack.status, stack.logs, stack.flip, stack.compose, stack.token):
    app.command(rich_help_panel="Local stack")(command)
app.command("stack-env", rich_help_panel="Local stack")(stack.stack_env)
for command in (postgres.pgtap, postgres.bench):
    app.command(rich_help_panel="Database")(command)
for command in (bootstrap.env, bootstrap.bootstrap_check):
    app.command(rich_help_panel="Machine setup")(command)


def main() -> None:
    app()
