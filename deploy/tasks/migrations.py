"""The database schema: ``supabase/migrations`` applied with the Supabase CLI on the host (the tool and
the command ops and the harness use: ``supabase migration up --db-url``), then the ``botmox_api`` role's
password set from the host's secrets file.

The CLI is the pinned one of ``package.json`` (``make bootstrap`` installs it under node_modules); its
Linux binary is uploaded, so the host needs no Node. Runs only when a migration is not applied yet or
``botmox_api`` cannot log in with its password (first deploy, rotated secret): a re-run is no change.
"""

from __future__ import annotations

import os
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from pyinfra.api.deploy import deploy
from pyinfra.api.exceptions import DeployError
from pyinfra.context import host
from pyinfra.operations import apt, files, server

from deploy.tasks import layout
from deploy.tasks.facts import AppliedMigrations, RoleLogsIn
from deploy.tasks.supabase import supabase_context
from deploy.tasks.templating import rendered

REPOSITORY: Final = Path(__file__).resolve().parents[2]
SUPABASE_DIR: Final = REPOSITORY / "supabase"
PINNED_CLI_BINARY: Final = REPOSITORY / "node_modules/@supabase/cli-linux-x64/bin/supabase"
CLI_ON_HOST: Final = f"{layout.TOOLS_DIR}/supabase"
API_ROLE: Final = "botmox_api"
API_PASSWORD_VARIABLE: Final = "BOTMOX_DB_API_PASSWORD"  # noqa: S105 - a variable name
POSTGRES_CLIENT: Final = "postgresql-client-15"


def local_migrations() -> list[Path]:
    return sorted(SUPABASE_DIR.glob("migrations/*.sql"))


def migration_version(path: Path) -> str:
    """``20261206160000_agents.sql`` -> ``20261206160000`` (what the CLI records)."""
    return path.name.split("_", 1)[0]


def supabase_cli_binary() -> Path:
    """The Linux binary to upload: ``$BOTMOX_SUPABASE_CLI_BINARY``, else the project's pinned one."""
    override = os.environ.get("BOTMOX_SUPABASE_CLI_BINARY")
    binary = Path(override) if override else PINNED_CLI_BINARY
    if not binary.is_file():
        raise DeployError(f"the Supabase CLI binary {binary} is missing: run `make bootstrap` first")
    return binary


@dataclass(frozen=True, slots=True)
class Database:
    """Where the commands below connect (as ``postgres``, its password from ``secrets_file``)."""

    port: int = layout.DB_PORT
    name: str = "postgres"
    secrets_file: str = layout.SECRETS_FILE

    def psql(self) -> str:
        name = shlex.quote(self.name)
        return f"psql -h 127.0.0.1 -p {self.port} -U postgres -d {name} -X -v ON_ERROR_STOP=1 -q"

    def with_password(self) -> str:
        """Shell prefix: the secrets file's variables exported, PGPASSWORD set (never in argv)."""
        return f'set -a; . {shlex.quote(self.secrets_file)}; set +a; export PGPASSWORD="$POSTGRES_PASSWORD"'


HOST_DATABASE: Final = Database()


def wait_for_database_command(database: Database = HOST_DATABASE) -> str:
    return (
        f"for attempt in $(seq 90); do pg_isready -q -h 127.0.0.1 -p {database.port} -U postgres && exit 0; "
        "sleep 2; done; echo 'the database did not answer within 180 s' >&2; exit 1"
    )


def migrate_command(
    profile: str,
    database: Database = HOST_DATABASE,
    workdir: str = layout.MIGRATIONS_WORKDIR,
    cli: str = CLI_ON_HOST,
) -> str:
    """Apply the platform baseline (db-only: a plain PostgreSQL lacks Supabase's roles), then every
    pending migration. The password reaches libpq and the CLI through PGPASSWORD, never argv."""
    steps = [database.with_password()]
    if profile == "db-only":
        steps.append(f"{database.psql()} -f {shlex.quote(workdir)}/platform-baseline.sql")
    url = f"postgresql://postgres@127.0.0.1:{database.port}/{database.name}?sslmode=disable"
    steps.append(
        f"SUPABASE_TELEMETRY_DISABLED=1 {shlex.quote(cli)} migration up --workdir {shlex.quote(workdir)} "
        f"--db-url {shlex.quote(url)}"
    )
    return " && ".join(steps)


def psql_script_command(script: str, database: Database = HOST_DATABASE) -> str:
    """Run ``script`` with psql as ``postgres``, fed on stdin (a quoted here-document: no shell
    expansion, so ``$$`` and ``:'var'`` reach psql as written)."""
    return f"{database.with_password()}; {database.psql()} <<'SQL'\n{script}SQL"


def role_password_sql(role: str, variable: str) -> str:
    """``alter role ROLE password`` with the value psql reads from the environment (``\\getenv``),
    so it appears neither in argv nor in pyinfra's output."""
    return f"\\getenv password {variable}\nalter role {role} password :'password';\n"


def role_password_command(role: str, variable: str, database: Database = HOST_DATABASE) -> str:
    return psql_script_command(role_password_sql(role, variable), database)


def platform_baseline_sql() -> str:
    """The Supabase platform baseline of the harness (one home: harness/src/harness/postgres/platform.py)."""
    from harness.postgres.platform import SUPABASE_PLATFORM_BASELINE

    return str(SUPABASE_PLATFORM_BASELINE.as_string(None))


@deploy("Database migrations")
def migrations() -> None:
    """Apply ``supabase/migrations`` and set ``botmox_api``'s password.

    Examples:
        .. code:: python

            from deploy.tasks.migrations import migrations
            migrations()  # after supabase(); data: supabase_profile
    """
    profile = supabase_context(host.data)["profile"]
    apt.packages(name="PostgreSQL 15 client (psql, pg_dump)", packages=[POSTGRES_CLIENT])
    files.directory(name="Tools directory", path=layout.TOOLS_DIR, mode="755")
    files.put(name="The pinned Supabase CLI", src=str(supabase_cli_binary()), dest=CLI_ON_HOST, mode="755")
    project = f"{layout.MIGRATIONS_WORKDIR}/supabase"
    files.directory(name="Migrations directory", path=f"{project}/migrations", mode="755")
    files.put(
        name="supabase/config.toml", src=str(SUPABASE_DIR / "config.toml"), dest=f"{project}/config.toml"
    )
    for migration in local_migrations():
        files.put(
            name=f"Migration {migration.name}",
            src=str(migration),
            dest=f"{project}/migrations/{migration.name}",
        )
    if profile == "db-only":
        files.put(
            name="Supabase's platform baseline (db-only)",
            src=rendered("supabase/platform-baseline.sql.j2", baseline=platform_baseline_sql()),
            dest=f"{layout.MIGRATIONS_WORKDIR}/platform-baseline.sql",
        )

    versions: list[str] = host.get_fact(
        AppliedMigrations, secrets_file=layout.SECRETS_FILE, port=layout.DB_PORT
    )
    applied = set(versions)
    pending = [m.name for m in local_migrations() if migration_version(m) not in applied]
    logs_in = host.get_fact(
        RoleLogsIn,
        secrets_file=layout.SECRETS_FILE,
        port=layout.DB_PORT,
        role=API_ROLE,
        variable=API_PASSWORD_VARIABLE,
    )
    if pending or not logs_in:
        server.shell(name="Wait for the database", commands=[wait_for_database_command()])
    if pending:
        server.shell(
            name=f"Apply {len(pending)} migration(s): {', '.join(pending)}",
            commands=[migrate_command(profile)],
        )
    if pending or not logs_in:
        server.shell(
            name=f"Set {API_ROLE}'s password from the host's secrets",
            commands=[role_password_command(API_ROLE, API_PASSWORD_VARIABLE)],
        )
