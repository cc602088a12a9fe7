"""pyinfra facts the tasks need beyond pyinfra's own. None of them ever reads a secret's value."""

from __future__ import annotations

import shlex

from pyinfra.api.facts import FactBase


class EnvFileKeys(FactBase[list[str]]):
    """The names in a ``KEY=VALUE`` file (values are never read off the host); empty when it is absent."""

    def command(self, path: str) -> str:
        return f"sed -n 's/^\\([A-Za-z_][A-Za-z0-9_]*\\)=.*/\\1/p' {shlex.quote(path)} 2>/dev/null || true"

    @staticmethod
    def default() -> list[str]:
        return []

    def process(self, output: list[str]) -> list[str]:
        return sorted({line.strip() for line in output if line.strip()})


class EnvFileValues(FactBase[dict[str, str]]):
    """A non-secret ``KEY=VALUE`` file (the rollout state) as a dict; empty when absent."""

    def command(self, path: str) -> str:
        return f"cat {shlex.quote(path)} 2>/dev/null || true"

    @staticmethod
    def default() -> dict[str, str]:
        return {}

    def process(self, output: list[str]) -> dict[str, str]:
        values: dict[str, str] = {}
        for line in output:
            name, sep, value = line.partition("=")
            if sep and name.strip():
                values[name.strip()] = value.strip()
        return values


class DockerImageId(FactBase[str | None]):
    """The local image's id, or None when the image is not there (or Docker is not running yet)."""

    def requires_command(self, ref: str) -> str:
        return "docker"

    def command(self, ref: str) -> str:
        return f"docker image inspect --format '{{{{.Id}}}}' {shlex.quote(ref)} 2>/dev/null || true"

    def process(self, output: list[str]) -> str | None:
        text = "\n".join(output).strip()
        return text or None


class AppliedMigrations(FactBase[list[str]]):
    """The versions in ``supabase_migrations.schema_migrations`` (empty before the first migration, or
    while the database does not answer), read as ``postgres`` with the password from the secrets file."""

    def requires_command(self, secrets_file: str, port: int, database: str = "postgres") -> str:
        return "psql"

    def command(self, secrets_file: str, port: int, database: str = "postgres") -> str:
        query = "select version from supabase_migrations.schema_migrations order by 1"
        return (
            f'(set -a; . {shlex.quote(secrets_file)}; PGPASSWORD="$POSTGRES_PASSWORD" '
            f"psql -h 127.0.0.1 -p {int(port)} -U postgres -d {shlex.quote(database)} -XAtq "
            f"-c {shlex.quote(query)}) 2>/dev/null || true"
        )

    @staticmethod
    def default() -> list[str]:
        return []

    def process(self, output: list[str]) -> list[str]:
        return [line.strip() for line in output if line.strip()]


class RoleLogsIn(FactBase[bool]):
    """Whether ``role`` logs in to the database with the password kept under ``variable`` in the
    secrets file (False before the first deploy, and after the secret was rotated)."""

    def requires_command(
        self, secrets_file: str, port: int, role: str, variable: str, database: str = "postgres"
    ) -> str:
        return "psql"

    def command(
        self, secrets_file: str, port: int, role: str, variable: str, database: str = "postgres"
    ) -> str:
        if not variable.isidentifier():
            raise ValueError(f"not a variable name: {variable!r}")
        return (
            f'(set -a; . {shlex.quote(secrets_file)}; PGPASSWORD="${variable}" '
            f"psql -h 127.0.0.1 -p {int(port)} -U {shlex.quote(role)} -d {shlex.quote(database)} -XAtq "
            "-c 'select 1') 2>/dev/null || true"
        )

    @staticmethod
    def default() -> bool:
        return False

    def process(self, output: list[str]) -> bool:
        return "1" in (line.strip() for line in output)


class ContainerKind(FactBase[str | None]):
    """What container the host is (``docker``, ``lxc``...), or None on a VM or bare metal."""

    def command(self) -> str:
        return "systemd-detect-virt --container 2>/dev/null || true"

    def process(self, output: list[str]) -> str | None:
        kind = "\n".join(output).strip()
        return None if kind in ("", "none") else kind
