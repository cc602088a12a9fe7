"""The docker runtime: every service of the description as a container on the host network.

It supplies the lifecycle (``harness.stack.lifecycle``) with launch, stop and alive for one
service. Before the first service starts it obtains a daemon (reusing one that answers, else
starting its own) and makes sure each service's image exists for its current inputs (building
only what changed, with rich progress). The migrations are applied from the host, as for the
native runtime. The state file's ``docker`` record holds container ids, log followers and the
dockerd the harness started; ``down`` removes exactly those and stops only that dockerd.
"""

from __future__ import annotations

import contextlib
import os
import re
import time
from collections.abc import Callable, Collection, Iterable, Iterator
from dataclasses import replace
from pathlib import Path

import docker
from rich.console import Console
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from harness import processes
from harness.stack.components import ProcessComponent
from harness.stack.description import STACK, StackDescription
from harness.stack.docker import base, ca, containers, daemon, images
from harness.stack.lifecycle import Reporter, StackLifecycle, StackStartError, choose_ports, initial_state
from harness.stack.state import DockerState, HarnessPaths, StackState, save
from harness.stack.values import StackValues, render_service

_STEP = re.compile(r"^Step (\d+)/(\d+) : (.*)$")
# A log follower stops at once when asked; it has nothing to save.
_FOLLOWER_LADDER = processes.terminate(5.0)


class DockerRuntime(StackLifecycle):
    """Builds images and runs containers for the stack; keeps only the log followers it spawned."""

    runtime = "docker"
    started_as = " (container)"

    def __init__(
        self,
        paths: HarnessPaths,
        *,
        description: StackDescription = STACK,
        project_root: Path | None = None,
        reporter: Reporter | None = None,
        console: Console | None = None,
        daemon_paths: daemon.DaemonPaths | None = None,
    ) -> None:
        super().__init__(paths, description=description, project_root=project_root, reporter=reporter)
        self.console = console
        self.daemon_paths = daemon_paths or daemon.DaemonPaths.default()
        # For the command under way: the daemon's client and each service's image id.
        self._client: docker.DockerClient | None = None
        self._images: dict[str, str] = {}

    # -- before the services --------------------------------------------------------------

    def _prepare(self, values: StackValues, state: StackState) -> tuple[StackValues, StackState]:
        with self.reporter.step("Docker daemon"):
            dockerd = daemon.obtain(self.daemon_paths)
        self._client = dockerd.client
        state.docker = DockerState(host=dockerd.socket_url, daemon=dockerd.started)
        save(self.paths, state)
        if dockerd.started is None:
            self.reporter.note(f"using the Docker daemon at {dockerd.socket_url} (left running on down)")
        self._images = self.build_images(dockerd.client)
        # Ports are chosen again once the (possibly minutes long) builds are done: one free before
        # them may have been taken meanwhile.
        values = replace(values, ports=choose_ports(self.description))
        fresh = initial_state(values, state.supervisor, self.runtime)
        fresh.docker = state.docker
        save(self.paths, fresh)
        return values, fresh

    def _prepare_flip(self, state: StackState) -> None:
        host = state.docker.host if state.docker else ""
        client = self._connect(state)
        if client is None:
            raise StackStartError(f"the Docker daemon at {host} does not answer")
        assert state.docker is not None
        self._images = {"api": str(client.containers.get(state.docker.containers["api"]).image.id)}

    def _connect(self, state: StackState) -> docker.DockerClient | None:
        if self._client is None and state.docker is not None:
            self._client = daemon.connect(state.docker.host)
        return self._client

    def _close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            client.close()

    # -- images ----------------------------------------------------------------------------

    def build_images(
        self, client: docker.DockerClient, only: Collection[str] | None = None
    ) -> dict[str, str]:
        """Each service's image id (of the services in ``only``, default all): reused when its inputs
        hash matches, else built. The deploy's tests ship the same images to their test hosts."""
        bases: dict[str, str] = {}
        built: dict[str, str] = {}
        bundle = ca.host_bundle()
        with ca.served(bundle) as ca_url:
            for service in self.description.start_order():
                if only is not None and service.name not in only:
                    continue
                from_image = bases.get(service.image.base_image) or self._base(
                    client, service.image.base_image
                )
                bases[service.image.base_image] = from_image
                inputs = images.inputs_of(
                    service, self.project_root, from_image, base.image_id(client, from_image)
                )
                reused = images.existing(client, inputs)
                if reused is not None:
                    self.reporter.note(f"[green]✓[/] image {inputs.tag()} reused (inputs unchanged)")
                    built[service.name] = reused
                    continue
                with self._build_progress(f"building image {inputs.tag()} on {from_image}") as on_line:
                    built[service.name] = images.build(
                        client,
                        inputs,
                        build_args={"BASE_IMAGE": from_image, "CA_BUNDLE_URL": ca_url},
                        log_path=self.paths.log_file(f"build-{service.name}"),
                        on_line=on_line,
                    )
        return built

    def _base(self, client: docker.DockerClient, default_image: str) -> str:
        found = base.resolve(client, default_image)
        if found:
            return found
        with self.reporter.step("building the Debian 12 base image (debootstrap + docker import)"):
            return base.build_fallback(client, self.daemon_paths, self.paths.log_file("build-base"))

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

    # -- one service -----------------------------------------------------------------------

    def _container_environment(self, name: str, values: StackValues) -> dict[str, str]:
        rendered = render_service(self.description, name, values).environment
        return {**rendered, **ca.container_environment(ca.host_bundle())}

    def _launch(self, component: ProcessComponent, values: StackValues, state: StackState) -> None:
        service = component.spec
        client = self._connect(state)
        # _prepare (up) or _prepare_flip reached the daemon before any launch.
        assert client is not None
        assert state.docker is not None
        label = containers.stack_label(self.paths.home)
        volumes = ca.container_volumes(ca.host_bundle())
        user = None
        state_dir = render_service(self.description, service.name, values).state_dir
        if state_dir is not None:
            volumes[str(state_dir)] = {"bind": str(state_dir), "mode": "rw"}
            user = f"{os.getuid()}:{os.getgid()}"
        started = containers.run(
            client,
            service,
            image_id=self._images[service.name],
            environment=self._container_environment(service.name, values),
            port=values.ports[service.name],
            label=label,
            volumes=volumes,
            stop_signal=component.stop_signal,
            user=user,
        )
        state.docker.containers[service.name] = started.container_id
        state.processes[service.name] = started.main_process
        save(self.paths, state)
        log = self.paths.log_file(service.name)
        follower = containers.follow_logs(state.docker.host, started.container_id, log)
        if follower is not None:
            state.docker.helpers[f"logs-{service.name}"] = follower[0]
            self._children[follower[0].pid] = follower[1]
            save(self.paths, state)

    def _alive(self, name: str, state: StackState) -> bool:
        client = self._connect(state)
        assert client is not None
        assert state.docker is not None
        return containers.is_running(client, state.docker.containers[name])

    def _recorded(self, state: StackState) -> Iterable[str]:
        return state.docker.containers if state.docker else {}

    def _stop(self, name: str, state: StackState) -> bool:
        client = self._connect(state)
        if client is None or state.docker is None:
            return False
        return containers.stop_and_remove(client, state.docker.containers[name])

    def _forget(self, name: str, state: StackState) -> None:
        state.processes.pop(name, None)
        if state.docker is not None:
            state.docker.containers.pop(name, None)
            follower = state.docker.helpers.pop(f"logs-{name}", None)
            if follower is not None:
                processes.stop(follower, ladder=_FOLLOWER_LADDER)

    # -- after the services ----------------------------------------------------------------

    def _release(self, state: StackState) -> None:
        """Stop the log followers and the dockerd this harness started (unless another stack uses it)."""
        if state.docker is None:
            return
        client = self._connect(state)
        others = [str(container.name) for container in client.containers.list()] if client else []
        for helper in state.docker.helpers.values():
            processes.stop(helper, ladder=_FOLLOWER_LADDER)
        for child in self._children.values():
            child.poll()
        self._children.clear()
        if state.docker.daemon is not None:
            if others:
                # Another stack (another checkout) reused the daemon this one started: leave it.
                self.reporter.note(f"dockerd left running: it still runs {', '.join(others)}")
            else:
                self._close()
                daemon.stop(state.docker.daemon)
                daemon.release_mounts(self.daemon_paths)
