"""The Supabase CLI and pg_prove, run against a database URL (no Docker needed for these).

Migrations are applied with the same tool ops uses (``supabase migration up --db-url``), and the
gates are Supabase's own: ``db lint --fail-on warning`` (plpgsql_check) and ``db advisors
--fail-on info`` (security and performance lints).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
from dataclasses import dataclass
from pathlib import Path

from harness import processes

CLI_TIMEOUT_S = 180.0
# The project's pinned CLI (npm, `make bootstrap`), relative to the project root.
PINNED_CLI = Path("node_modules/.bin/supabase")


class ToolFailed(RuntimeError):
    """A CLI run exited non-zero; the message carries its output."""

    def __init__(self, command: list[str], returncode: int, output: str) -> None:
        super().__init__(f"{' '.join(command)} exited {returncode}:\n{output}")
        self.command = command
        self.returncode = returncode
        self.output = output


@dataclass(frozen=True, slots=True)
class ToolResult:
    command: list[str]
    returncode: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return self.stdout + self.stderr


def find_project_root(start: Path | None = None) -> Path:
    """The directory holding ``supabase/config.toml``: ``BOTMOX_PROJECT_ROOT``, else the first parent
    of this file (or of ``start``) that has one."""
    override = os.environ.get("BOTMOX_PROJECT_ROOT")
    if override:
        return Path(override)
    candidates = [start or Path(__file__).resolve(), Path.cwd()]
    for candidate in candidates:
        for directory in (candidate, *candidate.parents):
            if (directory / "supabase" / "config.toml").is_file():
                return directory
    raise FileNotFoundError("no supabase/config.toml above the harness package or the working directory")


def find_supabase_cli(project_root: Path, explicit: Path | None = None) -> Path:
    """The Supabase CLI to run: ``explicit`` when given, else ``$SUPABASE_CLI``, else the project's
    pinned ``node_modules/.bin/supabase``, else ``supabase`` on PATH. The one place it is looked up."""
    if explicit is not None:
        if not explicit.is_file():
            raise FileNotFoundError(f"Supabase CLI not found at {explicit}")
        return explicit
    override = os.environ.get("SUPABASE_CLI")
    if override:
        return Path(override)
    pinned = project_root / PINNED_CLI
    if pinned.exists():
        return pinned
    found = shutil.which("supabase")
    if found is None:
        raise FileNotFoundError(
            f"Supabase CLI not found: neither {pinned} (run `make bootstrap`) nor `supabase` on PATH"
        )
    return Path(found)


def _run(command: list[str], *, cwd: Path, env: dict[str, str] | None = None, check: bool) -> ToolResult:
    """Run a tool in a process group of its own, so a timeout also ends its children (the npm
    ``supabase`` wrapper runs the real binary as a child; pg_prove runs psql)."""
    process = subprocess.Popen(  # noqa: S603 - fixed tools, our own arguments
        command,
        cwd=cwd,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        stdout, stderr = process.communicate(timeout=CLI_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        processes.signal_group(process.pid, signal.SIGKILL)  # the group we created for this tool
        stdout, stderr = process.communicate()
        raise ToolFailed(command, -1, f"timed out after {CLI_TIMEOUT_S}s\n{stdout}{stderr}") from None
    result = ToolResult(command, process.returncode, stdout, stderr)
    if check and result.returncode != 0:
        raise ToolFailed(command, result.returncode, result.output)
    return result


@dataclass(frozen=True, slots=True)
class SupabaseCli:
    """The pinned Supabase CLI of the project (``node_modules/.bin/supabase``; ``SUPABASE_CLI``
    overrides)."""

    project_root: Path
    executable: Path

    @classmethod
    def for_project(cls, project_root: Path | None = None) -> SupabaseCli:
        root = project_root or find_project_root()
        return cls(root, find_supabase_cli(root))

    @property
    def migrations_dir(self) -> Path:
        return self.project_root / "supabase" / "migrations"

    @property
    def tests_dir(self) -> Path:
        return self.project_root / "supabase" / "tests"

    def run(self, *args: str, check: bool = True) -> ToolResult:
        env = {**os.environ, "SUPABASE_TELEMETRY_DISABLED": "1"}
        command = [str(self.executable), *args, "--workdir", str(self.project_root)]
        return _run(command, cwd=self.project_root, env=env, check=check)

    def migration_up(self, db_url: str) -> ToolResult:
        return self.run("migration", "up", "--db-url", db_url)

    def migration_list(self, db_url: str) -> ToolResult:
        return self.run("migration", "list", "--db-url", db_url)

    def lint(self, db_url: str, *, check: bool = True) -> ToolResult:
        return self.run(
            "db", "lint", "--db-url", db_url, "--level", "warning", "--fail-on", "warning", check=check
        )

    def advisors(self, db_url: str, *, check: bool = True) -> ToolResult:
        # Level info is the strictest: any finding at all fails the gate.
        return self.run(
            "db",
            "advisors",
            "--db-url",
            db_url,
            "--type",
            "all",
            "--level",
            "info",
            "--fail-on",
            "info",
            check=check,
        )


def pg_prove(
    *, port: int, dbname: str, tests: list[Path], user: str = "postgres", check: bool = True
) -> ToolResult:
    """Run pgTAP files with ``pg_prove`` against a database on 127.0.0.1 (pgtap must be installed in it)."""
    if not tests:
        raise FileNotFoundError("no pgTAP test files given")
    command = [
        shutil.which("pg_prove") or "pg_prove",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--username",
        user,
        "--dbname",
        dbname,
        "--verbose",
        "--failures",
        *[str(test) for test in tests],
    ]
    env = {**os.environ, "PGSSLMODE": "disable"}
    return _run(command, cwd=tests[0].parent, env=env, check=check)
