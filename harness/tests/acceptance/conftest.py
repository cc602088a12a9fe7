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
from harness.fixtures.cli_stack import UP_TIMEOUT_S, StackUnderTest, cli_stack
from harness.stack.state import Runtime
from harness.stack.values import DATA_BACKENDS

# --import-mode=importlib keeps test directories off sys.path; the suite's helpers live next to it.
sys.path.insert(0, str(Path(__file__).parent))

RUNTIME_VARIABLE = "BOTMOX_ACCEPTANCE_RUNTIME"
BACKENDS_VARIABLE = "BOTMOX_ACCEPTANCE_BACKENDS"
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


@pytest.fixture(scope="session", params=_selected_backends())
def stack(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[StackUnderTest]:
    backend: DataBackend = request.param
    home = tmp_path_factory.mktemp(f"harness-home-{backend}")
    with cli_stack(home, backend, _selected_runtime()) as started:
        yield started
