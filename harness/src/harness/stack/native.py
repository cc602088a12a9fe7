"""The native runtime: every service of the description as a local process on 127.0.0.1.

``up`` starts the services in dependency order, waits for each one's health check, applies the
migrations with the Supabase CLI once PostgreSQL answers, and records every process in the state
file as soon as it exists. ``down`` and ``flip`` work from the state file alone, so they act on a
stack that a different (possibly long gone) ``up`` started.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Protocol

from psycopg import sql

from harness.postgres import API_ROLE
from harness.postgres_cluster import PostgresCluster
from harness.postgres_supabase import SupabaseCli, ToolFailed, find_project_root
from harness.stack import processes
from harness.stack.credentials import StackCredentials
from harness.stack.description import STACK, MigrationStep, ServiceSpec, StackDescription
from harness.stack.health import free_port, port_is_free, wait_healthy
from harness.stack.processes import ProcessIdentity
from harness.stack.state import HarnessPaths, StackState, save
from harness.stack.values import DataBackend, StackValues, render_service

# What a service process inherits from the caller's environment; everything else comes from the
# description, so a stray DATA_BACKEND or SUPABASE_URL in the shell cannot leak into the stack.
_INHERITED = ("PATH", "HOME", "LANG", "LC_ALL", "TZ", "TMPDIR", "SSL_CERT_FILE", "SSL_CERT_DIR")


class StackStartError(RuntimeError):
    """A service could not be started; everything started so far has been stopped again."""


class Reporter(Protocol):
    def step(self, label: str) -> AbstractContextManager[None]: ...

    def note(self, message: str) -> None: ...


class SilentReporter:
    @contextlib.contextmanager
    def step(self, label: str) -> Iterator[None]:
        yield

    def note(self, message: str) -> None:
        return None


def choose_ports(description: StackDescription) -> dict[str, int]:
    """Each service's default port when it is free, else any free port."""
    chosen: dict[str, int] = {}
    for service in description.services:
        port = service.port.default
        if port in chosen.values() or not port_is_free(port):
            port = free_port()
            while port in chosen.values():
                port = free_port()
        chosen[service.name] = port
    return chosen


def values_of(state: StackState) -> StackValues:
    """The stack's values back from its state file (for ``flip``)."""
    return StackValues(
        backend=state.data_backend,
        ports=dict(state.ports),
        credentials=StackCredentials(
            jwt_secret=state.jwt_secret,
            internal_api_token=state.internal_api_token,
            internal_infra_token=state.internal_infra_token,
            db_api_password=state.db_api_password,
        ),
        project_root=Path(state.project_root),
        data_dir=Path(state.data_dir),
        database=state.database,
        rtdb_namespace=state.rtdb_namespace,
        default_tenant_id=state.default_tenant_id,
        jwt_audience=state.jwt_audience,
    )


def _initial_state(values: StackValues, supervisor: ProcessIdentity | None) -> StackState:
    # URLs of services a (test) description leaves out are empty.
    def url_of(service: str, url: Callable[[], str]) -> str:
        return url() if service in values.ports else ""

    return StackState(
        runtime="native",
        data_backend=values.backend,
        api_url=url_of("api", lambda: values.url("api")),
        frontend_url=url_of("frontend", lambda: values.url("frontend")),
        supabase_db_url=url_of("postgres", lambda: values.postgres_url(admin=True)),
        supabase_api_db_url=url_of("postgres", lambda: values.postgres_url(admin=False)),
        rtdb_url=url_of("rtdb", lambda: values.rtdb_url),
        rtdb_namespace=values.rtdb_namespace,
        jwt_secret=values.credentials.jwt_secret,
        jwt_audience=values.jwt_audience,
        # The API checks the issuer only when SUPABASE_JWT_ISSUER is set; the stack leaves it unset.
        jwt_issuer=None,
        default_tenant_id=values.default_tenant_id,
        internal_api_token=values.credentials.internal_api_token,
        internal_infra_token=values.credentials.internal_infra_token,
        db_api_password=values.credentials.db_api_password,
        database=values.database,
        ports=dict(values.ports),
        project_root=str(values.project_root),
        data_dir=str(values.data_dir),
        supervisor=supervisor,
    )


class NativeRuntime:
    """Starts and stops the stack's processes. Keeps the children it spawned only to reap them."""

    def __init__(
        self,
        paths: HarnessPaths,
        *,
        description: StackDescription = STACK,
        project_root: Path | None = None,
        reporter: Reporter | None = None,
    ) -> None:
        self.paths = paths
        self.description = description
        self.project_root = project_root or find_project_root()
        self.reporter: Reporter = reporter or SilentReporter()
        self._children: dict[int, subprocess.Popen[bytes]] = {}
        self._clusters: list[PostgresCluster] = []

    # -- up --------------------------------------------------------------------------------

    def up(self, backend: DataBackend, *, supervisor: ProcessIdentity | None = None) -> StackState:
        """Start every service in order. On failure (or Ctrl-C) stop what was started and raise; the
        state file stays, naming the stopped processes, for the caller to remove."""
        self._fresh_directories()
        values = StackValues(
            backend=backend,
            ports=choose_ports(self.description),
            credentials=StackCredentials.generate(),
            project_root=self.project_root,
            data_dir=self.paths.data,
            database=self.description.migrations.database if self.description.migrations else "postgres",
        )
        state = _initial_state(values, supervisor)
        save(self.paths, state)
        try:
            for service in self.description.start_order():
                with self.reporter.step(f"starting {service.name}"):
                    self._start(service, values, state)
                migrations = self.description.migrations
                if migrations is not None and service.name == migrations.service:
                    self._migrate(self._clusters[-1], migrations, values)
        except BaseException:
            self.down(state)
            raise
        return state

    def _fresh_directories(self) -> None:
        # Logs and data of an earlier stack are replaced: each `up` is a new throwaway stack.
        for directory in (self.paths.data, self.paths.logs):
            shutil.rmtree(directory, ignore_errors=True)
            directory.mkdir(parents=True)

    def _start(self, service: ServiceSpec, values: StackValues, state: StackState) -> None:
        if service.engine == "postgresql":
            self._start_postgres(service, values, state)
        else:
            self._start_process(service, values, state)

    def _start_postgres(self, service: ServiceSpec, values: StackValues, state: StackState) -> None:
        # The cluster lives in the system temp dir, not under .harness: the postgres user must be able
        # to reach its data dir, and a checkout in root's home (0700) is out of its reach.
        cluster = PostgresCluster(port=values.ports[service.name], password_users=(API_ROLE,))
        self._clusters.append(cluster)
        state.postgres_dir = str(cluster.root)
        save(self.paths, state)
        log_link = self.paths.log_file(service.name)
        log_link.symlink_to(cluster.log_file)
        try:
            cluster.initdb()
            cluster.start()  # returns once it accepts connections (the description's postgres check)
        except Exception as error:
            raise StackStartError(f"postgres did not start: {error}") from error
        identity = processes.identify(cluster.pid) if cluster.pid is not None else None
        if identity is None:
            raise StackStartError(f"postgres exited during start-up; log {log_link}")
        state.processes[service.name] = identity
        save(self.paths, state)

    def _migrate(self, cluster: PostgresCluster, migrations: MigrationStep, values: StackValues) -> None:
        with self.reporter.step(f"applying {migrations.directory} with the Supabase CLI"):
            cluster.create_database(migrations.database)
            log = self.paths.log_file("migrations")
            try:
                result = SupabaseCli.for_project(self.project_root).migration_up(
                    values.postgres_url(admin=True)
                )
            except ToolFailed as failure:
                log.write_text(failure.output)
                raise StackStartError(f"supabase migration up failed; see {log}:\n{failure.output}") from None
            log.write_text(result.output)
            # The migration leaves botmox_api without a password (deploy sets it); so does the harness.
            cluster.execute(
                sql.SQL("alter role {} password {}").format(
                    sql.Identifier(API_ROLE), sql.Literal(values.credentials.db_api_password)
                )
            )

    def _environment(self, rendered: dict[str, str]) -> dict[str, str]:
        inherited = {name: os.environ[name] for name in _INHERITED if name in os.environ}
        return {**inherited, "PYTHONUNBUFFERED": "1", **rendered}

    def _start_process(self, service: ServiceSpec, values: StackValues, state: StackState) -> None:
        rendered = render_service(self.description, service.name, values)
        # "python" in the description is whatever interpreter runs the harness (the project's venv).
        command = [sys.executable if part == "python" else part for part in rendered.command]
        log = self.paths.log_file(service.name)
        identity, child = processes.spawn(
            command, environment=self._environment(rendered.environment), log_path=log, cwd=self.paths.data
        )
        self._children[identity.pid] = child
        state.processes[service.name] = identity
        save(self.paths, state)
        wait_healthy(
            service.name,
            service.health,
            rendered.health_url,
            alive=lambda: processes.is_running(identity),
            log_path=log,
        )

    # -- down ------------------------------------------------------------------------------

    def down(self, state: StackState) -> list[str]:
        """Stop exactly the processes the state names (reverse start order); returns the ones stopped."""
        stopped: list[str] = []
        order = [service.name for service in self.description.stop_order()]
        names = sorted(state.processes, key=lambda name: order.index(name) if name in order else -1)
        for name in names:
            if self._stop_service(name, state.processes[name]):
                stopped.append(name)
        for cluster in self._clusters:
            cluster.close()
        self._clusters.clear()
        if state.postgres_dir:
            shutil.rmtree(state.postgres_dir, ignore_errors=True)
        return stopped

    def _stop_service(self, name: str, identity: ProcessIdentity) -> bool:
        engine = self.description.service(name).engine if name in self.description.names() else "process"
        if engine == "postgresql":
            # SIGINT is PostgreSQL's fast shutdown; only the postmaster is signalled, it stops its backends.
            stopped = processes.stop(identity, first_signal=signal.SIGINT, whole_group=False, grace_s=30.0)
        else:
            stopped = processes.stop(identity)
        child = self._children.pop(identity.pid, None)
        if child is not None:
            child.poll()
        return stopped

    # -- flip ------------------------------------------------------------------------------

    def flip(self, state: StackState, backend: DataBackend) -> StackState:
        """Restart only the API with another DATA_BACKEND; the stores keep running, untouched.

        When the API does not come up in the new mode it is started again in the old one and the
        error is raised."""
        previous = state.data_backend
        api = self.description.service("api")
        old = state.processes.get("api")
        if old is not None:
            self._stop_service("api", old)
        state.processes.pop("api", None)
        try:
            with self.reporter.step(f"restarting the API with DATA_BACKEND={backend}"):
                self._start_process(api, values_of(state).with_backend(backend), state)
        except Exception:
            self._stop_leftover_api(state)
            self._start_process(api, values_of(state).with_backend(previous), state)
            raise
        state.data_backend = backend
        save(self.paths, state)
        return state

    def _stop_leftover_api(self, state: StackState) -> None:
        failed = state.processes.pop("api", None)
        if failed is not None:
            self._stop_service("api", failed)
