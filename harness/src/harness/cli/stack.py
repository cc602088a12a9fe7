"""``python -m harness up|down|status|logs|flip|compose|token|stack-env``: the local stack's commands.

Exit codes: 0 done; 1 a service failed (start, flip, health) or Docker could not be had; 2 bad input;
3 the stack is in the wrong state for the command (already running for ``up``, not running for
``status``, ``flip`` and ``token``).
"""

from __future__ import annotations

import enum
import os
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from types import FrameType
from typing import Annotated, NoReturn, Protocol

import typer
from rich.console import Console

from botmox_api.config import MAX_API_WORKERS
from botmox_api.model import DataBackend
from harness import processes
from harness.postgres.supabase import find_project_root
from harness.stack.compose import write_compose, write_secrets
from harness.stack.console import RichReporter, admin_environment, print_summary, status_table, token_for
from harness.stack.description import STACK, DescriptionError, check_extra_environment
from harness.stack.docker.daemon import DaemonUnavailable, can_start, find_running
from harness.stack.docker.runtime import DockerRuntime
from harness.stack.health import ServiceUnhealthy
from harness.stack.lifecycle import StackStartError
from harness.stack.logs import follow, tail
from harness.stack.native import NativeRuntime
from harness.stack.state import HarnessPaths, Runtime, StackState, StateError, load, remove

EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_WRONG_STATE = 3
SUPERVISOR_STOP_WAIT_S = 120.0
WATCH_INTERVAL_S = 1.0
# `flip --backfill` keeps the API down while the catch-up runs: bounded, like every wait here.
CATCH_UP_TIMEOUT_S = 3600.0
# A foreground `up` is bounded like every loop here: after a week it stops the stack by itself.
FOREGROUND_LIMIT_S = 7 * 24 * 3600.0


class Backend(enum.StrEnum):
    rtdb = "rtdb"
    supabase = "supabase"


class RuntimeChoice(enum.StrEnum):
    auto = "auto"
    docker = "docker"
    native = "native"


class StopRequested(BaseException):
    """SIGTERM or SIGHUP arrived: stop the stack like Ctrl-C does."""


def _console() -> Console:
    return Console(highlight=False)


def _error_console() -> Console:
    return Console(stderr=True, highlight=False)


def _fail(message: str, code: int) -> NoReturn:
    _error_console().print(f"[red]error:[/] {message}", soft_wrap=True)
    raise typer.Exit(code)


def _load(paths: HarnessPaths) -> StackState | None:
    try:
        return load(paths)
    except StateError as error:
        _fail(f"{error}; remove {paths.state_file} after checking nothing from it still runs", EXIT_FAILED)


def _raise_stop(signum: int, _frame: FrameType | None) -> None:
    raise StopRequested(signal.Signals(signum).name)


class StackRuntime(Protocol):
    project_root: Path

    def up(
        self,
        backend: DataBackend,
        *,
        supervisor: processes.ProcessIdentity | None = None,
        api_workers: int = 1,
        extra_environment: Mapping[str, Mapping[str, str]] | None = None,
    ) -> StackState: ...

    def down(self, state: StackState) -> list[str]: ...

    def flip(
        self,
        state: StackState,
        backend: DataBackend,
        *,
        api_environment: Mapping[str, str] | None = None,
        while_stopped: Callable[[], None] | None = None,
    ) -> StackState: ...


def _api_environment(
    options: list[str] | None, recorded: Mapping[str, str], *, may_drop: bool
) -> dict[str, str]:
    """The API's extra variables after ``--api-env`` options: ``NAME=VALUE`` sets one, ``NAME`` (only
    for ``flip``) drops one; the recorded ones are kept otherwise. Exit 2 on a name the stack sets."""
    variables = dict(recorded)
    for option in options or ():
        name, equals, value = option.partition("=")
        if equals:
            variables[name] = value
        elif may_drop:
            variables.pop(name, None)
        else:
            _fail(f"--api-env {option!r}: expected NAME=VALUE", EXIT_USAGE)
    try:
        check_extra_environment(STACK, {"api": variables})
    except DescriptionError as error:
        _fail(f"--api-env: {error}", EXIT_USAGE)
    return variables


def _resolve_runtime(runtime: RuntimeChoice, console: Console) -> Runtime:
    if runtime is RuntimeChoice.auto:
        # Docker when a daemon can be had: one that answers, or dockerd installed and ours to start
        # (the first docker `up` on a machine builds the images: minutes, with progress shown).
        daemon = find_running()
        if daemon is not None:
            daemon.client.close()
            console.print(f"runtime auto → docker (daemon at {daemon.socket_url})")
            return "docker"
        if can_start():
            console.print("runtime auto → docker (starting dockerd; --runtime native skips Docker)")
            return "docker"
        console.print("runtime auto → native (no Docker daemon answers and dockerd cannot be started)")
        return "native"
    return "docker" if runtime is RuntimeChoice.docker else "native"


def _runtime(name: Runtime, paths: HarnessPaths, console: Console | None = None) -> StackRuntime:
    reporter = RichReporter(console) if console is not None else None
    if name == "docker":
        return DockerRuntime(paths, reporter=reporter, console=console)
    return NativeRuntime(paths, reporter=reporter)


def up(
    backend: Annotated[Backend, typer.Option(help="The API's DATA_BACKEND.")] = Backend.rtdb,
    runtime: Annotated[RuntimeChoice, typer.Option(help="auto picks docker when a daemon can be had.")] = (
        RuntimeChoice.auto
    ),
    detach: Annotated[bool, typer.Option("--detach", "-d", help="Return once the stack is up.")] = False,
    api_workers: Annotated[
        int,
        typer.Option(min=1, max=MAX_API_WORKERS, help="The API's uvicorn worker processes (API_WORKERS)."),
    ] = 1,
    api_env: Annotated[
        list[str] | None,
        typer.Option(
            "--api-env",
            metavar="NAME=VALUE",
            help="An extra variable of the API, repeatable (STORAGE_POLICY_SHADOW=on); `flip` keeps it.",
        ),
    ] = None,
) -> None:
    """Start the whole stack, print its URLs and a demo bearer token; stay until Ctrl-C unless --detach."""
    api_variables = _api_environment(api_env, {}, may_drop=False)
    console = _console()
    chosen = _resolve_runtime(runtime, console)
    paths = HarnessPaths.default()
    supervisor = None if detach else processes.identify(os.getpid())
    runtime_impl = _runtime(chosen, paths, console)
    # Ctrl-C (KeyboardInterrupt) and SIGTERM/SIGHUP (StopRequested) during start-up stop what started.
    previous = {sig: signal.signal(sig, _raise_stop) for sig in (signal.SIGTERM, signal.SIGHUP)}
    # SIGINT raises KeyboardInterrupt even when the shell started us with it ignored (a background job).
    previous[signal.SIGINT] = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        extra = {"api": api_variables} if api_variables else {}
        state = _start(console, paths, runtime_impl, backend.value, supervisor, api_workers, extra)
        try:
            print_summary(console, state, paths, detached=detach)
            if not detach:
                _watch_foreground(console, paths)
        except (KeyboardInterrupt, StopRequested):
            if detach:
                console.print("interrupted; the detached stack keeps running (`harness down` stops it)")
                raise typer.Exit(130) from None
        # The stack is up: from here on, an interrupt anywhere stops it (never "nothing left running").
        if not detach:
            _stop_foreground(console, paths, runtime_impl)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _start(
    console: Console,
    paths: HarnessPaths,
    runtime_impl: StackRuntime,
    backend: DataBackend,
    supervisor: processes.ProcessIdentity | None,
    api_workers: int,
    extra_environment: Mapping[str, Mapping[str, str]],
) -> StackState:
    """Start the stack under the state lock; an interrupt here stops what had started (exit 130)."""
    try:
        with paths.locked():
            existing = _load(paths)
            if existing is not None and existing.is_alive():
                _fail(
                    f"a stack is already running (API {existing.api_url}, state {paths.state_file}); "
                    "nothing was changed. Stop it with `python -m harness down`.",
                    EXIT_WRONG_STATE,
                )
            if existing is not None:
                # leftovers of a stack whose processes are all gone
                _runtime(existing.runtime, paths).down(existing)
                remove(paths)
            _warn_about_env_file(console, runtime_impl.project_root)
            try:
                return runtime_impl.up(
                    backend,
                    supervisor=supervisor,
                    api_workers=api_workers,
                    extra_environment=extra_environment,
                )
            except (StackStartError, ServiceUnhealthy, DaemonUnavailable, RuntimeError, OSError) as error:
                remove(paths)
                _fail(str(error), EXIT_FAILED)
            except BaseException:
                remove(paths)
                raise
    except (KeyboardInterrupt, StopRequested):
        console.print("stopped during start-up; nothing left running")
        raise typer.Exit(130) from None


def _warn_about_env_file(console: Console, project_root: Path) -> None:
    env_file = project_root / "services" / "api" / ".env"
    if env_file.exists():
        console.print(
            f"note: {env_file} is not read by this stack; its API gets every setting from the harness "
            "(see .harness/state.json). Run the API by hand to use that file."
        )


def _watch_foreground(console: Console, paths: HarnessPaths) -> None:
    """Report services that exit on their own until Ctrl-C, SIGTERM, SIGHUP or the state file goes."""
    reported: set[str] = set()
    deadline = time.monotonic() + FOREGROUND_LIMIT_S
    try:
        while time.monotonic() < deadline:
            time.sleep(WATCH_INTERVAL_S)
            state = _load(paths)
            if state is None:
                console.print("the state file is gone; leaving the foreground")
                return
            for name, identity in state.processes.items():
                if name not in reported and not processes.is_running(identity):
                    reported.add(name)
                    console.print(
                        f"[red]{name} exited[/]; see `python -m harness logs {name}`", soft_wrap=True
                    )
    except (KeyboardInterrupt, StopRequested):
        pass


def _stop_foreground(console: Console, paths: HarnessPaths, runtime: StackRuntime) -> None:
    # Further Ctrl-C must not interrupt the shutdown half-way.
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, signal.SIG_IGN)
    with console.status("stopping the stack..."), paths.locked():
        state = _load(paths)
        stopped = runtime.down(state) if state is not None else []
        remove(paths)
    console.print(f"stopped: {', '.join(stopped) or 'nothing was running'}")


def down() -> None:
    """Stop exactly what `up` started (by PID, checked against each process's start time)."""
    console = _console()
    paths = HarnessPaths.default()
    state = _load(paths)
    if state is None:
        console.print("no stack is running (no state file)")
        return
    supervisor = state.supervisor
    if supervisor is not None and supervisor.pid != os.getpid() and processes.is_running(supervisor):
        # A foreground `up` owns the stack: ask it to stop everything, as Ctrl-C would.
        console.print(f"asking the foreground `up` (pid {supervisor.pid}) to stop the stack")
        os.kill(supervisor.pid, signal.SIGTERM)
        if not processes.wait_gone(supervisor, SUPERVISOR_STOP_WAIT_S):
            _fail(f"the foreground `up` (pid {supervisor.pid}) did not stop", EXIT_FAILED)
    with paths.locked():
        state = _load(paths)
        if state is None:
            console.print("stopped")
            return
        stopped = _runtime(state.runtime, paths).down(state)
        remove(paths)
    console.print(f"stopped: {', '.join(stopped) or 'nothing was running'}")


def _running_state(paths: HarnessPaths) -> StackState:
    state = _load(paths)
    if state is None or not state.is_alive():
        _fail("no stack is running; start one with `python -m harness up`", EXIT_WRONG_STATE)
    return state


def status() -> None:
    """A table of the services: PID, URL, whether the process runs and its health check passes."""
    paths = HarnessPaths.default()
    state = _running_state(paths)
    table, healthy = status_table(STACK, state)
    _console().print(table)
    if not healthy:
        raise typer.Exit(EXIT_FAILED)


def logs(
    service: Annotated[str | None, typer.Argument(help="One service; all of them when omitted.")] = None,
    lines: Annotated[int, typer.Option("--lines", "-n", min=0, help="Lines from the end.")] = 40,
    follow_logs: Annotated[bool, typer.Option("--follow", "-f", help="Keep printing new lines.")] = False,
) -> None:
    """Print the end of a service's log (`.harness/logs/<service>.log`)."""
    paths = HarnessPaths.default()
    known = (*STACK.names(), "migrations")
    if service is not None and service not in known:
        _fail(f"unknown service {service!r}; choose one of {', '.join(known)}", EXIT_USAGE)
    names = [service] if service else [name for name in known if paths.log_file(name).exists()]
    if not names:
        _fail(f"no logs in {paths.logs}; has a stack been started?", EXIT_WRONG_STATE)
    for name in names:
        if len(names) > 1:
            print(f"==> {paths.log_file(name)} <==")
        text = tail(paths.log_file(name), lines)
        if text:
            print(text)
    if follow_logs:
        try:
            follow(
                [paths.log_file(name) for name in names],
                lambda line: print(line, flush=True),
                keep_going=paths.state_file.exists,
            )
        except KeyboardInterrupt:
            return


def flip(
    backend: Annotated[Backend, typer.Option(help="The DATA_BACKEND to restart the API with.")],
    api_env: Annotated[
        list[str] | None,
        typer.Option(
            "--api-env",
            metavar="NAME[=VALUE]",
            help="Set (NAME=VALUE) or drop (NAME) an extra variable of the API, repeatable; others are kept.",
        ),
    ] = None,
    backfill: Annotated[
        bool,
        typer.Option(
            "--backfill",
            help="While the API is down, copy storage policies from the old backend to the new one "
            "(the cutover's catch-up); if it reports anything, start the API again in the old mode.",
        ),
    ] = False,
) -> None:
    """Restart only the API with the other DATA_BACKEND; PostgreSQL and RTDB keep running, untouched."""
    console = _console()
    paths = HarnessPaths.default()
    with paths.locked():
        state = _running_state(paths)
        recorded = state.extra_environment.get("api", {})
        variables = _api_environment(api_env, recorded, may_drop=True)
        if state.data_backend == backend.value and variables == recorded:
            console.print(f"the API already runs with DATA_BACKEND={backend.value}; nothing changed")
            return
        runtime = _runtime(state.runtime, paths, console)
        # In the mode it already runs in (a restart for --api-env) there is nothing to catch up.
        flipping = state.data_backend != backend.value
        catch_up = _catch_up_backfill(state, paths, backend.value, console) if backfill and flipping else None
        try:
            runtime.flip(state, backend.value, api_environment=variables, while_stopped=catch_up)
        except (StackStartError, ServiceUnhealthy, RuntimeError, OSError) as error:
            _fail(f"{error}\nthe API was started again with DATA_BACKEND={state.data_backend}", EXIT_FAILED)
    extra = f"; extra variables: {', '.join(sorted(variables))}" if variables else ""
    console.print(
        f"API restarted with DATA_BACKEND={backend.value}{extra} (pid {state.processes['api'].pid})"
    )


class BackfillFailed(RuntimeError):
    """The catch-up backfill of ``flip --backfill`` did not finish clean; the flip is abandoned."""


def _catch_up_backfill(
    state: StackState, paths: HarnessPaths, target: DataBackend, console: Console
) -> Callable[[], None]:
    """The cutover tool, run as ops run it, on the stack's backends while no API writes to them
    (docs/runbooks/storage-policy-cutover.md): writes acknowledged by the old mode up to its last
    moment reach the new backend before the new mode serves a request.

    Every tenant, every time (``--restart``): resuming from a checkpoint an earlier run left (an
    aborted flip's, an interrupted manual backfill's) would skip the tenants before it, and their
    writes since would be lost by the flip. The checkpoint is the stack's own, in its home, never
    the checkout's ``.cutover/``, which other stacks and manual runs share."""
    source = state.data_backend
    checkpoint = paths.home / "cutover" / f"catch-up-{source}-to-{target}.json"
    command = [
        *(sys.executable, "-m", "botmox_api.cutover", "backfill", "--from", source, "--to", target),
        *("--restart", "--checkpoint", str(checkpoint)),
    ]
    shown = " ".join(command[1:])

    def run() -> None:
        console.print(f"API stopped; catch-up backfill {source} -> {target}")
        try:
            result = subprocess.run(  # noqa: S603 - this interpreter, fixed arguments
                command,
                env={**os.environ, **admin_environment(state)},
                cwd=state.project_root,
                timeout=CATCH_UP_TIMEOUT_S,
                check=False,
            )
        except subprocess.TimeoutExpired:
            raise BackfillFailed(f"the catch-up backfill took more than {CATCH_UP_TIMEOUT_S:.0f} s") from None
        if result.returncode != 0:
            raise BackfillFailed(f"the catch-up backfill ({shown}) exited {result.returncode}; see above")

    return run


def compose(
    secrets_file: Annotated[
        Path | None,
        typer.Option(
            "--secrets", help="Also write fresh secrets to this env file (mode 0600; never commit it)."
        ),
    ] = None,
) -> None:
    """Write compose.local.yaml from the stack description (the same services as --runtime docker)."""
    project_root = find_project_root()
    target = write_compose(project_root)
    _console().print(f"wrote {target}")
    if secrets_file is not None:
        try:
            write_secrets(secrets_file)
        except FileExistsError:
            _fail(f"{secrets_file} exists; it was left as it is", EXIT_USAGE)
        _console().print(f"wrote fresh secrets to {secrets_file}")


def token() -> None:
    """Print a fresh 12-hour bearer token for the demo tenant of the running stack."""
    print(token_for(_running_state(HarnessPaths.default())))


def stack_env() -> None:
    """Print shell exports of the stack's variables for admin tools (SUPABASE_DB_URL is the superuser's)."""
    # eval "$(python -m harness stack-env)": docs/runbooks/storage-policy-cutover.md
    for name, value in admin_environment(_running_state(HarnessPaths.default())).items():
        print(f"export {name}={shlex.quote(value)}")
