"""The stack's lifecycle, written once for every runtime: up, down, flip.

``up`` starts the description's services in dependency order, waits for each one's health check,
migrates the database service once it is healthy, and records every service in the state file as
soon as it exists; on failure (or Ctrl-C) it stops what it started, in reverse order, and raises.
``down`` and ``flip`` work from the state file alone, so they act on a stack that a different
(possibly long gone) ``up`` started. A runtime (``harness.stack.native``, ``harness.stack.docker.runtime``)
supplies only how one service is launched, stopped and seen alive; what differs per kind of service
comes from its component (``harness.stack.components``).
"""

from __future__ import annotations

import contextlib
import shutil
import subprocess
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import AbstractContextManager
from dataclasses import replace
from pathlib import Path
from typing import ClassVar, Protocol

from botmox_api.model import DataBackend
from harness.postgres.supabase import SupabaseCli, ToolFailed, find_project_root
from harness.processes import ProcessIdentity, free_port, port_is_free
from harness.stack.components import ProcessComponent, StackPreparationFailed, component_of
from harness.stack.credentials import StackCredentials
from harness.stack.description import STACK, MigrationStep, StackDescription
from harness.stack.health import wait_healthy
from harness.stack.state import HarnessPaths, Runtime, StackState, save
from harness.stack.values import StackValues


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
            syncthing_api_key=state.syncthing_api_key,
            agent_vault_passphrase=state.agent_vault_passphrase,
        ),
        project_root=Path(state.project_root),
        data_dir=Path(state.data_dir),
        database=state.database,
        rtdb_namespace=state.rtdb_namespace,
        default_tenant_id=state.default_tenant_id,
        jwt_audience=state.jwt_audience,
        api_workers=state.api_workers,
        extra_environment={name: dict(variables) for name, variables in state.extra_environment.items()},
    )


def initial_state(values: StackValues, supervisor: ProcessIdentity | None, runtime: Runtime) -> StackState:
    # URLs of services a (test) description leaves out are empty.
    def url_of(service: str, url: Callable[[], str]) -> str:
        return url() if service in values.ports else ""

    return StackState(
        runtime=runtime,
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
        syncthing_api_key=values.credentials.syncthing_api_key,
        agent_vault_passphrase=values.credentials.agent_vault_passphrase,
        database=values.database,
        ports=dict(values.ports),
        project_root=str(values.project_root),
        data_dir=str(values.data_dir),
        api_workers=values.api_workers,
        extra_environment={name: dict(variables) for name, variables in values.extra_environment.items()},
        supervisor=supervisor,
    )


class StackLifecycle:
    """up / down / flip over a runtime's ``_launch``, ``_stop``, ``_alive`` (and optional hooks)."""

    runtime: ClassVar[Runtime]
    # How a step names what it starts ("" for a process, " (container)").
    started_as: ClassVar[str] = ""

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
        # Processes this object spawned (services, log followers), by PID, kept only to reap them.
        self._children: dict[int, subprocess.Popen[bytes]] = {}

    # -- what a runtime supplies ------------------------------------------------------------

    def _launch(self, component: ProcessComponent, values: StackValues, state: StackState) -> None:
        """Start one service and record it in ``state`` (saved by the lifecycle once this returns;
        a runtime saves earlier what must survive a crash half-way through its launch)."""
        raise NotImplementedError

    def _alive(self, name: str, state: StackState) -> bool:
        raise NotImplementedError

    def _stop(self, name: str, state: StackState) -> bool:
        """Stop one recorded service; True when it was running. ``state`` still names it after."""
        raise NotImplementedError

    def _forget(self, name: str, state: StackState) -> None:
        """Drop a stopped service from ``state`` (before it is started again by ``flip``)."""
        state.processes.pop(name, None)

    def _recorded(self, state: StackState) -> Iterable[str]:
        """The services ``state`` says were started."""
        return state.processes

    def _prepare(self, values: StackValues, state: StackState) -> tuple[StackValues, StackState]:
        """Before the first service starts (docker: the daemon and the images)."""
        return values, state

    def _prepare_flip(self, state: StackState) -> None:
        """Before ``flip`` stops the API (docker: reach the daemon, remember the API's image)."""

    def _release(self, state: StackState) -> None:
        """After ``down`` stopped every service (what the runtime holds beyond its services)."""

    def _close(self) -> None:
        """After each command (connections the runtime opened for it)."""

    # -- up --------------------------------------------------------------------------------

    def up(
        self,
        backend: DataBackend,
        *,
        supervisor: ProcessIdentity | None = None,
        api_workers: int = 1,
        extra_environment: Mapping[str, Mapping[str, str]] | None = None,
    ) -> StackState:
        """Start every service in order (the API with ``api_workers`` uvicorn workers; each service with
        its ``extra_environment`` on top of the description's). On failure (or Ctrl-C) stop what was
        started and raise; the state file stays, naming the stopped services, for the caller to remove."""
        self._fresh_directories()
        values = StackValues(
            backend=backend,
            ports=choose_ports(self.description),
            credentials=StackCredentials.generate(),
            project_root=self.project_root,
            data_dir=self.paths.data,
            database=self.description.migrations.database if self.description.migrations else "postgres",
            api_workers=api_workers,
            extra_environment=extra_environment or {},
        )
        state = initial_state(values, supervisor, self.runtime)
        save(self.paths, state)
        try:
            values, state = self._prepare(values, state)
            migrations = self.description.migrations
            for service in self.description.start_order():
                component = component_of(service)
                with self.reporter.step(f"starting {service.name}{self.started_as}"):
                    self._start(component, values, state)
                if migrations is not None and service.name == migrations.service:
                    self._migrate(component, migrations, values)
        except BaseException:
            self.down(state)
            raise
        finally:
            self._close()
        return state

    def _fresh_directories(self) -> None:
        # Logs and data of an earlier stack are replaced: each `up` is a new throwaway stack.
        for directory in (self.paths.data, self.paths.logs):
            shutil.rmtree(directory, ignore_errors=True)
            directory.mkdir(parents=True)

    def _start(self, component: ProcessComponent, values: StackValues, state: StackState) -> None:
        name = component.spec.name
        port = values.ports[name]
        if not port_is_free(port):
            # Another stack starting at the same moment may have taken it since `up` chose it; its
            # service would pass this one's health check (and the agent pair with the wrong API).
            raise StackStartError(
                f"port {port} of {name} was free when the stack chose its ports and is taken now "
                "(another stack starting at the same time?); nothing of it is used: run `up` again"
            )
        try:
            start_values = component.before_start(self.description, values)
        except StackPreparationFailed as error:
            raise StackStartError(f"{name} could not be prepared: {error}") from error
        if start_values:
            values = replace(values, start_values=start_values)
        self._launch(component, values, state)
        # Recorded before it is checked, so a `down` elsewhere can stop it if this one dies.
        save(self.paths, state)
        wait_healthy(
            name,
            component.spec.health,
            component.health_target(self.description, values),
            alive=lambda: self._alive(name, state),
            log_path=self.paths.log_file(name),
        )

    def _migrate(self, component: ProcessComponent, migrations: MigrationStep, values: StackValues) -> None:
        with self.reporter.step(f"applying {migrations.directory} with the Supabase CLI"):
            log = self.paths.log_file("migrations")
            try:
                result = component.migrate(migrations, values, SupabaseCli.for_project(self.project_root))
            except ToolFailed as failure:
                log.write_text(failure.output)
                raise StackStartError(f"supabase migration up failed; see {log}:\n{failure.output}") from None
            log.write_text(result.output)

    # -- down ------------------------------------------------------------------------------

    def down(self, state: StackState) -> list[str]:
        """Stop exactly the services the state names (reverse start order); returns the ones that
        were running."""
        order = [service.name for service in self.description.stop_order()]
        names = sorted(self._recorded(state), key=lambda name: order.index(name) if name in order else -1)
        try:
            stopped = [name for name in names if self._stop(name, state)]
            self._release(state)
        finally:
            self._close()
        return stopped

    def component(self, name: str) -> ProcessComponent | None:
        """The component of a service the description has (a state file may name others)."""
        return component_of(self.description.service(name)) if name in self.description.names() else None

    # -- flip ------------------------------------------------------------------------------

    def flip(
        self,
        state: StackState,
        backend: DataBackend,
        *,
        api_environment: Mapping[str, str] | None = None,
        while_stopped: Callable[[], None] | None = None,
    ) -> StackState:
        """Restart only the API with another DATA_BACKEND (and, when given, ``api_environment`` as its
        extra variables instead of the recorded ones); the stores keep running, untouched.

        ``while_stopped`` runs once the API is down and before it starts again: the cutover's
        catch-up backfill, which must see no API writing to the old backend. When it raises, or the
        API does not come up the new way, the API is started again as it was and the error is raised."""
        before = values_of(state)
        extra = dict(before.extra_environment)
        if api_environment is not None:
            extra["api"] = dict(api_environment)
        wanted = replace(
            before.with_backend(backend), extra_environment={k: v for k, v in extra.items() if v}
        )
        api = component_of(self.description.service("api"))
        try:
            self._prepare_flip(state)
            self._restart(api, state)
            try:
                if while_stopped is not None:
                    while_stopped()
                with self.reporter.step(f"restarting the API{self.started_as} with DATA_BACKEND={backend}"):
                    self._start(api, wanted, state)
            except Exception:
                self._restart(api, state)
                self._start(api, before, state)
                raise
        finally:
            self._close()
        state.data_backend = backend
        state.extra_environment = {
            name: dict(variables) for name, variables in wanted.extra_environment.items()
        }
        save(self.paths, state)
        return state

    def _restart(self, component: ProcessComponent, state: StackState) -> None:
        name = component.spec.name
        if name in self._recorded(state):
            self._stop(name, state)
        self._forget(name, state)
