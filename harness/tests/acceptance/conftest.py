"""The acceptance suite's fixtures: one stack per backend, brought up and down by the harness CLI.

``stack`` is session-scoped and parametrized over the backends, so pytest runs every acceptance test
against the ``rtdb`` stack, stops it, then runs them all against the ``supabase`` stack: each stack
starts once and only one runs at a time. Its finalizer always runs ``python -m harness down`` and
then checks that nothing of the stack is left (no process, no listening port, `status` says nothing
runs); what `down` missed is stopped by identity before the failure is reported.

Two variables choose what runs (CI runs the docker runtime for ``supabase`` only):
``BOTMOX_ACCEPTANCE_RUNTIME`` (``native``, the default, or ``docker``) and
``BOTMOX_ACCEPTANCE_BACKENDS`` (comma-separated, default ``rtdb,supabase``).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from botmox_api.model import DataBackend
from harness import processes
from harness.stack.native import NativeRuntime
from harness.stack.state import HOME_VARIABLE, HarnessPaths, Runtime, StackState, load, remove
from harness.stack.values import DATA_BACKENDS

# --import-mode=importlib keeps test directories off sys.path; the suite's helpers live next to it.
sys.path.insert(0, str(Path(__file__).parent))

from stack_under_test import PrintedSummary, StackUnderTest, leftovers, run_cli, transcript

RUNTIME_VARIABLE = "BOTMOX_ACCEPTANCE_RUNTIME"
BACKENDS_VARIABLE = "BOTMOX_ACCEPTANCE_BACKENDS"
# `up` is ~8 s natively; a docker `up` on a fresh machine builds a Debian base and every image.
UP_TIMEOUT_S: dict[Runtime, float] = {"native": 180.0, "docker": 1500.0}
SUITE = Path(__file__).parent


def _selected_runtime() -> Runtime:
    value = os.environ.get(RUNTIME_VARIABLE, "native").strip() or "native"
    if value == "docker":
        return "docker"
    if value != "native":
        raise pytest.UsageError(f"{RUNTIME_VARIABLE}={value!r}: expected native or docker")
    return "native"


def _selected_backends() -> tuple[DataBackend, ...]:
    raw = os.environ.get(BACKENDS_VARIABLE, "").strip()
    if not raw:
        return DATA_BACKENDS
    chosen = tuple(backend for backend in DATA_BACKENDS if backend in raw.split(","))
    unknown = {name.strip() for name in raw.split(",")} - set(DATA_BACKENDS)
    if unknown or not chosen:
        raise pytest.UsageError(
            f"{BACKENDS_VARIABLE}={raw!r}: expected a comma-separated subset of rtdb,supabase"
        )
    return chosen


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # The first test of each backend pays for `up`; a cold docker `up` needs more than the default timeout.
    if _selected_runtime() != "docker":
        return
    for item in items:
        if SUITE in item.path.parents:
            item.add_marker(pytest.mark.timeout(UP_TIMEOUT_S["docker"] + 300))


def _cli_environment(home: Path) -> dict[str, str]:
    # A wide terminal, so rich never wraps the URLs and the status table; no colour codes to parse.
    return {**os.environ, HOME_VARIABLE: str(home), "COLUMNS": "200", "NO_COLOR": "1", "TERM": "dumb"}


def _force_stop(paths: HarnessPaths, state: StackState) -> None:
    if state.runtime == "native":
        NativeRuntime(paths).down(state)
        return
    # The docker runtime's own clean-up is `down`, which just failed; stop what still runs by identity.
    for identity in state.processes.values():
        processes.stop(identity)


def _stop_everything(paths: HarnessPaths, environment: dict[str, str], started: StackState | None) -> None:
    """``down`` through the CLI, then prove it left nothing; clean up by identity whatever it missed."""
    problems: list[str] = []
    down = run_cli(environment, "down")
    if down.returncode != 0:
        problems.append(f"`down` failed: {transcript(down)}")
    remaining = load(paths)
    if remaining is not None:
        problems.append("`down` left the state file behind")
    status = run_cli(environment, "status")
    if status.returncode != 3:
        problems.append(f"`status` after `down` should say nothing runs (exit 3): {transcript(status)}")
    for state in (remaining, started):
        if state is not None and leftovers(state):
            problems += [f"after `down`: {item}" for item in leftovers(state)]
            _force_stop(paths, state)
    remove(paths)
    if problems:
        raise AssertionError("\n".join(problems))


@pytest.fixture(scope="session", params=_selected_backends())
def stack(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[StackUnderTest]:
    backend: DataBackend = request.param
    runtime = _selected_runtime()
    paths = HarnessPaths(tmp_path_factory.mktemp(f"harness-home-{backend}"))
    environment = _cli_environment(paths.home)
    started: StackState | None = None
    try:
        up = run_cli(
            environment,
            *("up", "--detach", "--backend", backend, "--runtime", runtime),
            timeout_s=UP_TIMEOUT_S[runtime],
        )
        started = load(paths)
        if up.returncode != 0 or started is None:
            pytest.fail(
                f"`python -m harness up --backend {backend} --runtime {runtime}` failed: {transcript(up)}"
            )
        yield StackUnderTest(
            backend=backend,
            runtime=runtime,
            paths=paths,
            environment=environment,
            up=up,
            state=started,
            printed=PrintedSummary.parse(up.stdout),
        )
    finally:
        _stop_everything(paths, environment, started)
