"""The RTDB the test VPS's API reaches: the harness's emulator (a stand-in: Firebase cannot be reached
from here, docs: environment.md), in a container of its own on Docker's default bridge, where the test
hosts reach it by its address as a real control plane reaches Firebase over the network.

``RtdbStandIn`` is a context manager: it builds (or reuses) the harness's ``rtdb`` image, starts it
listening on the bridge, waits until it answers, and removes it by id on exit.
"""

from __future__ import annotations

import contextlib
import time
from pathlib import Path
from types import TracebackType

import docker
import httpx
from docker.errors import APIError, NotFound

from harness.stack.docker.runtime import DockerRuntime
from harness.stack.state import HarnessPaths

PORT = 9000
NAMESPACE = "botmox-test"
READY_TIMEOUT_S = 60.0


class RtdbStandInError(RuntimeError):
    """The emulator's container could not be started or did not answer."""


class RtdbStandIn:
    def __init__(self, client: docker.DockerClient, workdir: Path, *, label: dict[str, str]) -> None:
        self._client = client
        self._workdir = workdir
        self._label = label
        self._container_id: str | None = None
        self.address = ""

    @property
    def database_url(self) -> str:
        """The API's ``FIREBASE_DATABASE_URL`` (the emulator's URL with its namespace)."""
        return f"http://{self.address}:{PORT}?ns={NAMESPACE}"

    @property
    def emulator_host(self) -> str:
        """The API's ``FIREBASE_DATABASE_EMULATOR_HOST``."""
        return f"{self.address}:{PORT}"

    def __enter__(self) -> RtdbStandIn:
        try:
            self._start()
        except BaseException:
            self._remove()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._remove()

    def _start(self) -> None:
        image = DockerRuntime(HarnessPaths(self._workdir / "harness")).build_images(
            self._client, only=("rtdb",)
        )
        try:
            container = self._client.containers.run(
                image["rtdb"],
                detach=True,
                environment={"HOST": "0.0.0.0", "PORT": str(PORT)},  # noqa: S104 - the bridge, not the world
                labels=self._label,
            )
        except APIError as error:
            raise RtdbStandInError(f"cannot start the RTDB emulator: {error}") from error
        self._container_id = str(container.id)
        container.reload()
        self.address = str(container.attrs["NetworkSettings"]["IPAddress"])
        deadline = time.monotonic() + READY_TIMEOUT_S
        probe = f"http://{self.address}:{PORT}/.json?ns={NAMESPACE}&shallow=true"
        while time.monotonic() < deadline:
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(probe, timeout=2.0).status_code == 200:
                    return
            time.sleep(0.25)
        raise RtdbStandInError(
            f"the RTDB emulator at {self.address}:{PORT} did not answer in {READY_TIMEOUT_S:.0f} s"
        )

    def _remove(self) -> None:
        if self._container_id is None:
            return
        with contextlib.suppress(NotFound):
            self._client.containers.get(self._container_id).remove(force=True, v=True)
        self._container_id = None
