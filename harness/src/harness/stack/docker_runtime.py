"""The docker runtime: every service of the description as a container on the host network.

``up`` obtains a daemon (reusing one that answers, else starting its own), makes sure each
service's image exists for its current inputs (building only what changed, with rich progress),
then starts the containers in dependency order, waits for each health check, and applies the
migrations with the Supabase CLI from the host once PostgreSQL answers, exactly as the native
runtime does. The state file records container ids, their main processes, log followers and the
dockerd the harness started; ``down`` removes exactly those and stops only that dockerd.
"""

from __future__ import annotations

import contextlib
import re
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path

import docker
import psycopg
from psycopg import sql
from rich.console import Console
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from harness.postgres import API_ROLE
from harness.postgres_cluster import dsn
from harness.postgres_supabase import SupabaseCli, ToolFailed, find_project_root
from harness.stack import docker_base, docker_ca, docker_containers, docker_daemon, docker_images, processes
from harness.stack.credentials import StackCredentials
from harness.stack.description import STACK, MigrationStep, ServiceSpec, StackDescription
from harness.stack.health import wait_healthy
from harness.stack.native import (
    Reporter,
    SilentReporter,
    StackStartError,
    _initial_state,
    choose_ports,
    values_of,
)
from harness.stack.state import HarnessPaths, StackState, save
from harness.stack.values import DataBackend, StackValues, render_service

_STEP = re.compile(r"^Step (\d+)/(\d+) : (.*)$")


class DockerRuntime:
    """Builds images and runs containers for the stack; keeps only the log followers it spawned."""

    def __init__(
        self,
        paths: HarnessPaths,
        *,
        description: StackDescription = STACK,
        project_root: Path | None = None,
        reporter: Reporter | None = None,
        console: Console | None = None,
        daemon_paths: docker_daemon.DaemonPaths | None = None,
    ) -> None:
        self.paths = paths
        self.description = description
        self.project_root = project_root or find_project_root()
        self.reporter: Reporter = reporter or SilentReporter()
        self.console = console
        self.daemon_paths = daemon_paths or docker_daemon.DaemonPaths.default()
        self._children: list[subprocess.Popen[bytes]] = []

    # -- up --------------------------------------------------------------------------------

    def up(self, backend: DataBackend, *, supervisor: processes.ProcessIdentity | None = None) -> StackState:
        """Start every service in order. On failure (or Ctrl-C) remove what was started and raise."""
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
        state.runtime = "docker"
        save(self.paths, state)
        try:
            with self.reporter.step("Docker daemon"):
                daemon = docker_daemon.obtain(self.daemon_paths)
            state.docker_host = daemon.socket_url
            state.docker_daemon = daemon.started
            save(self.paths, state)
            if daemon.started is None:
                self.reporter.note(f"using the Docker daemon at {daemon.socket_url} (left running on down)")
            with contextlib.closing(daemon.client):
                images = self._images(daemon.client)
                # Ports are chosen again once the (possibly minutes long) builds are done: one free
                # before them may have been taken meanwhile.
                values = replace(values, ports=choose_ports(self.description))
                state = self._with_fresh_ports(state, values)
                self._start_all(daemon.client, images, values, state)
        except BaseException:
            self.down(state)
            raise
        return state

    def _with_fresh_ports(self, old: StackState, values: StackValues) -> StackState:
        state = _initial_state(values, old.supervisor)
        state.runtime = "docker"
        state.docker_host = old.docker_host
        state.docker_daemon = old.docker_daemon
        save(self.paths, state)
        return state

    def _start_all(
        self, client: docker.DockerClient, images: dict[str, str], values: StackValues, state: StackState
    ) -> None:
        for service in self.description.start_order():
            with self.reporter.step(f"starting {service.name} (container)"):
                self._start(client, service, images[service.name], values, state)
            migrations = self.description.migrations
            if migrations is not None and service.name == migrations.service:
                self._migrate(migrations, values)

    def _fresh_directories(self) -> None:
        for directory in (self.paths.data, self.paths.logs):
            shutil.rmtree(directory, ignore_errors=True)
            directory.mkdir(parents=True)

    # -- images ----------------------------------------------------------------------------

    def _images(self, client: docker.DockerClient) -> dict[str, str]:
        """Each service's image id: reused when its inputs hash matches, else built."""
        bases: dict[str, str] = {}
        images: dict[str, str] = {}
        bundle = docker_ca.host_bundle()
        with docker_ca.served(bundle) as ca_url:
            for service in self.description.start_order():
                base = bases.get(service.image.base_image) or self._base(client, service.image.base_image)
                bases[service.image.base_image] = base
                inputs = docker_images.inputs_of(
                    service, self.project_root, base, docker_base.image_id(client, base)
                )
                reused = docker_images.existing(client, inputs)
                if reused is not None:
                    self.reporter.note(f"[green]✓[/] image {inputs.tag()} reused (inputs unchanged)")
                    images[service.name] = reused
                    continue
                with self._build_progress(f"building image {inputs.tag()} on {base}") as on_line:
                    images[service.name] = docker_images.build(
                        client,
                        inputs,
                        build_args={"BASE_IMAGE": base, "CA_BUNDLE_URL": ca_url},
                        log_path=self.paths.log_file(f"build-{service.name}"),
                        on_line=on_line,
                    )
        return images

    def _base(self, client: docker.DockerClient, default_image: str) -> str:
        found = docker_base.resolve(client, default_image)
        if found:
            return found
        with self.reporter.step("building the Debian 12 base image (debootstrap + docker import)"):
            return docker_base.build_fallback(client, self.daemon_paths, self.paths.log_file("build-base"))

    @contextlib.contextmanager
    def _build_progress(self, label: str) -> Iterator[Callable[[str], None]]:
        """A bar over the Dockerfile's steps with the current instruction, then one summary line."""
        began = time.monotonic()
        if self.console is None:
            yield lambda _line: None
            return
        columns = (SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), TimeElapsedColumn())
        with Progress(*columns, console=self.console, transient=True) as progress:
            task = progress.add_task(label, total=None)

            def on_line(line: str) -> None:
                step = _STEP.match(line)
                if step:
                    progress.update(
                        task,
                        completed=int(step.group(1)) - 1,
                        total=int(step.group(2)),
                        description=f"{label}: {step.group(3)[:60]}",
                    )

            yield on_line
        self.console.print(f"[green]✓[/] {label} [dim]({time.monotonic() - began:.1f} s)[/]")

    # -- containers ------------------------------------------------------------------------

    def _container_environment(self, name: str, values: StackValues) -> dict[str, str]:
        rendered = render_service(self.description, name, values).environment
        return {**rendered, **docker_ca.container_environment(docker_ca.host_bundle())}

    def _start(
        self,
        client: docker.DockerClient,
        service: ServiceSpec,
        image_id: str,
        values: StackValues,
        state: StackState,
    ) -> None:
        label = docker_containers.stack_label(self.paths.home)
        started = docker_containers.run(
            client,
            service,
            image_id=image_id,
            environment=self._container_environment(service.name, values),
            port=values.ports[service.name],
            label=label,
            volumes=docker_ca.container_volumes(docker_ca.host_bundle()),
        )
        state.containers[service.name] = started.container_id
        state.processes[service.name] = started.main_process
        save(self.paths, state)
        log = self.paths.log_file(service.name)
        follower = docker_containers.follow_logs(state.docker_host or "", started.container_id, log)
        if follower is not None:
            state.helpers[f"logs-{service.name}"] = follower[0]
            self._children.append(follower[1])
            save(self.paths, state)
        if service.health.kind == "postgres":
            target = dsn(port=values.ports[service.name], dbname="postgres")
        else:
            target = render_service(self.description, service.name, values).health_url
        wait_healthy(
            service.name,
            service.health,
            target,
            alive=lambda: docker_containers.is_running(client, started.container_id),
            log_path=log,
        )

    def _migrate(self, migrations: MigrationStep, values: StackValues) -> None:
        with self.reporter.step(f"applying {migrations.directory} with the Supabase CLI"):
            port = values.ports[migrations.service]
            with psycopg.connect(dsn(port=port, dbname="postgres"), autocommit=True) as connection:
                connection.execute(sql.SQL("create database {}").format(sql.Identifier(migrations.database)))
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
            with psycopg.connect(values.postgres_url(admin=True), autocommit=True) as connection:
                connection.execute(
                    sql.SQL("alter role {} password {}").format(
                        sql.Identifier(API_ROLE), sql.Literal(values.credentials.db_api_password)
                    )
                )

    # -- down ------------------------------------------------------------------------------

    def down(self, state: StackState) -> list[str]:
        """Remove exactly the containers the state names (reverse start order), stop the log
        followers and the dockerd this harness started; returns the services that were running."""
        stopped: list[str] = []
        client = docker_daemon.connect(state.docker_host) if state.docker_host else None
        order = [service.name for service in self.description.stop_order()]
        names = sorted(state.containers, key=lambda name: order.index(name) if name in order else -1)
        others: list[str] = []
        if client is not None:
            with contextlib.closing(client):
                for name in names:
                    if docker_containers.stop_and_remove(client, state.containers[name]):
                        stopped.append(name)
                others = [str(container.name) for container in client.containers.list()]
        for helper in state.helpers.values():
            processes.stop(helper, grace_s=5.0)
        for child in self._children:
            child.poll()
        self._children.clear()
        if state.docker_daemon is not None:
            if others:
                # Another stack (another checkout) reused the daemon this one started: leave it.
                self.reporter.note(f"dockerd left running: it still runs {', '.join(others)}")
            else:
                docker_daemon.stop(state.docker_daemon)
                docker_daemon.release_mounts(self.daemon_paths)
        return stopped

    # -- flip ------------------------------------------------------------------------------

    def flip(self, state: StackState, backend: DataBackend) -> StackState:
        """Start a new API container with another DATA_BACKEND; the stores keep running, untouched.
        When it does not come up, the API is started again in the old mode and the error raised."""
        client = docker_daemon.connect(state.docker_host or "")
        if client is None:
            raise StackStartError(f"the Docker daemon at {state.docker_host} does not answer")
        with contextlib.closing(client):
            return self._flip(client, state, backend)

    def _flip(self, client: docker.DockerClient, state: StackState, backend: DataBackend) -> StackState:
        api = self.description.service("api")
        image_id = str(client.containers.get(state.containers["api"]).image.id)
        previous = state.data_backend
        self._remove_api(client, state)
        try:
            with self.reporter.step(f"restarting the API container with DATA_BACKEND={backend}"):
                self._start(client, api, image_id, values_of(state).with_backend(backend), state)
        except Exception:
            self._remove_api(client, state)
            self._start(client, api, image_id, values_of(state).with_backend(previous), state)
            raise
        state.data_backend = backend
        save(self.paths, state)
        return state

    def _remove_api(self, client: docker.DockerClient, state: StackState) -> None:
        container_id = state.containers.pop("api", None)
        if container_id is not None:
            docker_containers.stop_and_remove(client, container_id)
        state.processes.pop("api", None)
        follower = state.helpers.pop("logs-api", None)
        if follower is not None:
            processes.stop(follower, grace_s=5.0)
