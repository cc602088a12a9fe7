"""A throwaway PostgreSQL 15 that plays Supabase's database, migrated with the Supabase CLI.

``MigratedPostgres.start()`` runs ``initdb`` (or copies a snapshot data dir), starts a private
cluster on 127.0.0.1 and a free port, applies ``supabase/migrations`` with
``supabase migration up --db-url`` into the template database ``botmox_template``, and gives the
login role ``botmox_api`` a generated password. Each test then gets a fresh database with
``CREATE DATABASE x TEMPLATE botmox_template`` (milliseconds). The server is stopped by PID.

``run_pgtap_gates`` and ``run_bench`` are ``python -m harness pgtap`` / ``bench`` (``make pgtap`` /
``make bench-parts``; the command line is ``harness.cli.postgres``).

pytest fixtures: ``harness.fixtures.postgres``.
"""

from __future__ import annotations

import itertools
import secrets
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

import psycopg
from psycopg import sql

from harness.postgres.cluster import PostgresCluster, PostgresError, dsn
from harness.postgres.platform import SUPABASE_PLATFORM_BASELINE
from harness.postgres.supabase import SupabaseCli, ToolFailed, ToolResult, pg_prove

__all__ = [
    "API_ROLE",
    "TEMPLATE_DATABASE",
    "DataDirSnapshot",
    "MigratedPostgres",
    "PgDatabase",
    "PostgresCluster",
    "PostgresError",
    "PrivatePostgres",
    "ToolFailed",
    "migrate",
]

TEMPLATE_DATABASE = "botmox_template"
API_ROLE = "botmox_api"


@dataclass(frozen=True, slots=True)
class PgDatabase:
    """One migrated database. ``api_dsn`` logs in as ``botmox_api`` (password checked, no
    BYPASSRLS): the connection the API uses; ``admin_dsn`` is the superuser."""

    name: str
    port: int
    admin_dsn: str
    api_dsn: str
    api_user: str
    api_password: str


def migrate(
    *, port: int, database: str, api_password: str, cli: SupabaseCli, platform: bool = True
) -> ToolResult:
    """Make ``database`` on the server at 127.0.0.1:``port`` the way Supabase's is made: create it,
    apply the platform baseline (unless ``platform=False``), ``supabase migration up``, then give
    ``botmox_api`` its password as deploy does. The one way the stack's database and the tests'
    template are made; raises ``ToolFailed`` with the CLI's output."""
    with psycopg.connect(dsn(port=port, dbname="postgres"), autocommit=True) as connection:
        connection.execute(sql.SQL("create database {}").format(sql.Identifier(database)))
    target = dsn(port=port, dbname=database)
    if platform:
        with psycopg.connect(target, autocommit=True) as connection:
            connection.execute(SUPABASE_PLATFORM_BASELINE)
    result = cli.migration_up(target)
    # The migration creates botmox_api without a password (deploy sets it); do what deploy does.
    with psycopg.connect(target, autocommit=True) as connection:
        connection.execute(
            sql.SQL("alter role {} password {}").format(sql.Identifier(API_ROLE), sql.Literal(api_password))
        )
    return result


class DataDirSnapshot:
    """A stopped copy of a migrated data dir, cloned by later clusters instead of initdb+migrate."""

    def __init__(self, data_dir: Path, api_password: str, holder: Path) -> None:
        self.data_dir = data_dir
        self.api_password = api_password
        self._holder = holder

    def close(self) -> None:
        shutil.rmtree(self._holder, ignore_errors=True)


class MigratedPostgres:
    """A private cluster whose template database has every migration applied."""

    def __init__(self, cluster: PostgresCluster, cli: SupabaseCli, api_password: str) -> None:
        self.cluster = cluster
        self.cli = cli
        self.api_password = api_password
        self._names = itertools.count(1)

    @classmethod
    def start(
        cls,
        *,
        cli: SupabaseCli | None = None,
        snapshot: DataDirSnapshot | None = None,
        port: int | None = None,
        platform: bool = True,
    ) -> MigratedPostgres:
        """initdb + start + migrate the template, or, given a snapshot, copy it and start.

        ``platform`` first applies Supabase's baseline (roles, default privileges) to the template,
        as a Supabase project has; without it the migrations meet a bare PostgreSQL.
        """
        cli = cli or SupabaseCli.for_project()
        cluster = PostgresCluster(port=port, password_users=(API_ROLE,))
        try:
            if snapshot is not None:
                cluster.clone_data_dir(snapshot.data_dir)
                cluster.start()
                return cls(cluster, cli, snapshot.api_password)
            cluster.initdb()
            cluster.start()
            server = cls(cluster, cli, secrets.token_urlsafe(24))
            migrate(
                port=cluster.port,
                database=TEMPLATE_DATABASE,
                api_password=server.api_password,
                cli=cli,
                platform=platform,
            )
            return server
        except BaseException:
            cluster.close()
            raise

    @property
    def port(self) -> int:
        return self.cluster.port

    @property
    def template_dsn(self) -> str:
        return self.cluster.dsn(TEMPLATE_DATABASE)

    def snapshot(self, *, restart: bool = True) -> DataDirSnapshot:
        """Stop, copy the data dir aside, and (unless ``restart=False``) start again on the same port."""
        holder = Path(tempfile.mkdtemp(prefix="botmox-pg-snapshot-"))
        try:
            self.cluster.stop()
            target = holder / "data"
            PostgresCluster.copy_data_dir(self.cluster.data_dir, target)
            return DataDirSnapshot(target, self.api_password, holder)
        except BaseException:
            shutil.rmtree(holder, ignore_errors=True)
            raise
        finally:
            if restart:
                self.cluster.start()

    def new_database(self, prefix: str = "test") -> PgDatabase:
        name = f"{prefix}_{next(self._names)}_{secrets.token_hex(3)}"
        self.cluster.create_database(name, template=TEMPLATE_DATABASE)
        return self.describe(name)

    def describe(self, name: str) -> PgDatabase:
        return PgDatabase(
            name=name,
            port=self.port,
            admin_dsn=self.cluster.dsn(name),
            api_dsn=dsn(port=self.port, dbname=name, user=API_ROLE, password=self.api_password),
            api_user=API_ROLE,
            api_password=self.api_password,
        )

    def drop_database(self, database: PgDatabase) -> None:
        if self.cluster.running:
            self.cluster.drop_database(database.name)

    @contextmanager
    def database(self, prefix: str = "test") -> Iterator[PgDatabase]:
        database = self.new_database(prefix)
        try:
            yield database
        finally:
            self.drop_database(database)

    # -- gates -----------------------------------------------------------------------------

    def lint(self, database: PgDatabase, *, check: bool = True) -> ToolResult:
        return self.cli.lint(database.admin_dsn, check=check)

    def advisors(self, database: PgDatabase, *, check: bool = True) -> ToolResult:
        return self.cli.advisors(database.admin_dsn, check=check)

    def run_pgtap(self, tests: list[Path] | None = None, *, check: bool = True) -> ToolResult:
        """pg_prove the pgTAP files (default: ``supabase/tests/*.sql``) in a fresh database."""
        files = tests if tests is not None else sorted(self.cli.tests_dir.glob("*.sql"))
        with self.database("pgtap") as database:
            self.cluster.execute(sql.SQL("create extension if not exists pgtap"), dbname=database.name)
            return pg_prove(port=self.port, dbname=database.name, tests=files, check=check)

    # -- lifecycle -------------------------------------------------------------------------

    def close(self) -> None:
        self.cluster.close()

    def __enter__(self) -> MigratedPostgres:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


@dataclass(frozen=True, slots=True)
class PrivatePostgres:
    """A dedicated cluster and its migrated database; ``stop()``/``start()`` keep port and data."""

    server: MigratedPostgres
    database: PgDatabase

    def stop(self) -> None:
        self.server.cluster.stop()

    def start(self) -> None:
        self.server.cluster.start()

    @property
    def running(self) -> bool:
        return self.server.cluster.running


# -- the gates and the benchmark behind `python -m harness pgtap` and `bench` ----------------------


def _timed(label: str, action: Callable[[], object]) -> float:
    began = time.perf_counter()
    action()
    elapsed = time.perf_counter() - began
    print(f"  {label}: {elapsed * 1000:.0f} ms", flush=True)
    return elapsed


def _report_gate(name: str, result: ToolResult) -> None:
    print(f"== {name}: ok", flush=True)
    print(result.output.strip(), flush=True)


def run_pgtap_gates() -> int:
    """Start, migrate, lint, advisors, check that a second ``migration up`` is a no-op, pg_prove, stop."""
    print("== starting a throwaway PostgreSQL 15 and applying supabase/migrations", flush=True)
    began = time.perf_counter()
    with MigratedPostgres.start() as server:
        print(
            f"  fixture start (initdb + start + migrate): {(time.perf_counter() - began) * 1000:.0f} ms"
            f" on 127.0.0.1:{server.port}, postmaster pid {server.cluster.pid}",
            flush=True,
        )
        try:
            with server.database("gates") as database:
                _report_gate("supabase db lint --fail-on warning", server.lint(database))
                _report_gate("supabase db advisors --fail-on info", server.advisors(database))
                before = server.cli.migration_list(database.admin_dsn).stdout
                again = server.cli.migration_up(database.admin_dsn)
                after = server.cli.migration_list(database.admin_dsn).stdout
                if before != after or "up to date" not in again.output:
                    print(f"== migration up is not a no-op:\n{again.output}\n{before}\n{after}", flush=True)
                    return 1
                print("== supabase migration up (second time): no-op", flush=True)
            result = server.run_pgtap(check=False)
        except ToolFailed as failure:
            print(f"== FAILED: {failure}", flush=True)
            return 1
    print(result.output, flush=True)
    print(f"== pg_prove: {'ok' if result.returncode == 0 else 'FAILED'}", flush=True)
    return 0 if result.returncode == 0 else 1


def run_bench(databases: int = 20) -> int:
    """Print fixture cold start, snapshot start and per-test database creation times."""
    print("== PostgreSQL fixture timings", flush=True)
    began = time.perf_counter()
    with MigratedPostgres.start() as server:
        print(
            f"  cold start (initdb + start + supabase migration up + password): "
            f"{(time.perf_counter() - began) * 1000:.0f} ms",
            flush=True,
        )
        snapshot = server.snapshot()
        try:
            private: list[MigratedPostgres] = []
            try:
                _timed(
                    "private cluster from snapshot (cp -a + start)",
                    lambda: private.append(MigratedPostgres.start(cli=server.cli, snapshot=snapshot)),
                )
            finally:
                for cluster in private:
                    cluster.close()
        finally:
            snapshot.close()
        created: list[PgDatabase] = []
        began = time.perf_counter()
        for _ in range(databases):
            created.append(server.new_database("bench"))
        per_database = (time.perf_counter() - began) / databases
        print(
            f"  per-test database (CREATE DATABASE ... TEMPLATE), mean of {databases}: "
            f"{per_database * 1000:.1f} ms",
            flush=True,
        )
        began = time.perf_counter()
        for database in created:
            server.drop_database(database)
        print(
            f"  per-test database drop (WITH FORCE), mean of {databases}: "
            f"{(time.perf_counter() - began) / databases * 1000:.1f} ms",
            flush=True,
        )
    return 0
