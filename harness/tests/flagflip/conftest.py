"""The flag-flip suite's fixtures: one stack for the whole suite, brought up and down by the harness CLI.

``flip_stack`` (session) is a native stack started with ``python -m harness up --backend rtdb`` in a
private ``BOTMOX_HARNESS_HOME``, always stopped with ``python -m harness down`` (and checked to leave
nothing: ``harness.fixtures.cli_stack``). ``stack`` hands it to a test with the API in ``rtdb`` mode
and no extra variables, flipping it back first when an earlier test left it otherwise; ``operator``
runs the commands ops type (``operator_commands``). ``tenants`` names tenants of the test's
own and removes their policies and settings from both stores afterwards, so every test starts with
both backends in step (a ``verify`` of all tenants is clean between tests).
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from harness.fixtures.cli_stack import StackUnderTest, cli_stack

# --import-mode=importlib keeps test directories off sys.path; the suite's helpers live next to it.
sys.path.insert(0, str(Path(__file__).parent))

from operator_commands import Operator, flip

START_BACKEND = "rtdb"


@pytest.fixture(scope="session")
def flip_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StackUnderTest]:
    with cli_stack(tmp_path_factory.mktemp("harness-home-flagflip"), START_BACKEND) as started:
        yield started


@pytest.fixture(scope="session")
def admin_env(flip_stack: StackUnderTest) -> dict[str, str]:
    """What ``eval "$(python -m harness stack-env)"`` sets (the same for the stack's whole life)."""
    return flip_stack.stack_env()


@pytest.fixture
def stack(flip_stack: StackUnderTest) -> StackUnderTest:
    current = flip_stack.current()
    if current.data_backend != START_BACKEND or current.extra_environment:
        # Back to the mode the suite starts in, without the extra variables a test gave the API.
        drops = [
            option for name in current.extra_environment.get("api", {}) for option in ("--api-env", name)
        ]
        flip(flip_stack, START_BACKEND, *drops)
    return flip_stack


@pytest.fixture
def operator(stack: StackUnderTest, admin_env: dict[str, str], tmp_path: Path) -> Operator:
    return Operator(stack, admin_env, tmp_path)


@pytest.fixture
def tenants(stack: StackUnderTest, request: pytest.FixtureRequest) -> Iterator[Callable[[int], list[str]]]:
    """``tenants(n)``: n fresh tenant ids for this test; both stores forget them afterwards."""
    made: list[str] = []
    stem = request.node.name.removeprefix("test_").replace("_", "-")[:40].strip("-")

    def make(count: int) -> list[str]:
        new = [f"ff-{stem}-{len(made) + index}" for index in range(count)]
        made.extend(new)
        return new

    yield make
    for tenant in made:
        stack.rtdb_delete(f"tenants/{tenant}")
    if made:
        stack.sql("delete from public.storage_policies where tenant_id = any(%s)", (made,))
