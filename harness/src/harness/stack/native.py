"""The native runtime: every service of the description as a local process on 127.0.0.1.

It supplies the lifecycle (``harness.stack.lifecycle``) with launch, stop and alive for one
service: a process spawned from the service's command (``harness.processes``), identified in the
state file by PID and start time, stopped with its component's signal ladder.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Mapping

from harness import processes
from harness.stack.components import ProcessComponent
from harness.stack.lifecycle import StackLifecycle, StackStartError
from harness.stack.state import StackState, save
from harness.stack.values import StackValues

# What a service process inherits from the caller's environment; everything else comes from the
# description, so a stray DATA_BACKEND or SUPABASE_URL in the shell cannot leak into the stack.
_INHERITED = ("PATH", "HOME", "LANG", "LC_ALL", "TZ", "TMPDIR", "SSL_CERT_FILE", "SSL_CERT_DIR")


class NativeRuntime(StackLifecycle):
    """Starts and stops the stack's processes. Keeps the children it spawned only to reap them."""

    runtime = "native"

    def _environment(self, rendered: Mapping[str, str]) -> dict[str, str]:
        inherited = {name: os.environ[name] for name in _INHERITED if name in os.environ}
        return {**inherited, "PYTHONUNBUFFERED": "1", **rendered}

    def _launch(self, component: ProcessComponent, values: StackValues, state: StackState) -> None:
        name = component.spec.name
        launch = component.native_launch(self.description, values)
        if launch.scratch_dir is not None:
            state.postgres_dir = str(launch.scratch_dir)
            save(self.paths, state)
        if launch.prepare is not None:
            try:
                launch.prepare()
            except Exception as error:
                raise StackStartError(f"{name} could not be prepared: {error}") from error
        identity, child = processes.spawn(
            launch.command,
            environment=self._environment(launch.environment),
            log_path=self.paths.log_file(name),
            cwd=launch.cwd or self.paths.data,
            account=launch.account,
        )
        self._children[identity.pid] = child
        state.processes[name] = identity

    def _alive(self, name: str, state: StackState) -> bool:
        return processes.is_running(state.processes[name])

    def _stop(self, name: str, state: StackState) -> bool:
        identity = state.processes[name]
        component = self.component(name)
        return processes.stop(
            identity,
            ladder=component.stop_ladder if component else processes.TERMINATE,
            whole_group=component.stop_whole_group if component else True,
            child=self._children.pop(identity.pid, None),
        )

    def _release(self, state: StackState) -> None:
        if state.postgres_dir:
            shutil.rmtree(state.postgres_dir, ignore_errors=True)
