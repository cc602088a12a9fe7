"""A missing tool skips a test on a teammate's machine and fails it in CI (``harness.fixtures.tools``)."""

from __future__ import annotations

import pytest

from harness.fixtures.tools import in_ci, require_tool, skip_or_fail

MISSING = "botmox-no-such-program"


@pytest.mark.parametrize(
    ("value", "expected"),
    [(None, False), ("", False), ("0", False), ("false", False), ("No", False), ("1", True), ("true", True)],
)
def test_in_ci_reads_the_ci_variable(value: str | None, expected: bool) -> None:
    assert in_ci({} if value is None else {"CI": value}) is expected


def test_outside_ci_a_missing_tool_skips() -> None:
    with pytest.raises(pytest.skip.Exception, match=f"{MISSING} is not installed"):
        require_tool(MISSING, "apt-get install it", environment={"CI": "false"})


@pytest.mark.parametrize("value", ["1", "true"])
def test_in_ci_a_missing_tool_fails(value: str) -> None:
    with pytest.raises(pytest.fail.Exception, match=f"{MISSING} is not installed.*fails instead of skipping"):
        require_tool(MISSING, "apt-get install it", environment={"CI": value})


def test_skip_or_fail_without_a_tool_name() -> None:
    with pytest.raises(pytest.skip.Exception, match="no daemon"):
        skip_or_fail("no daemon", environment={})
    with pytest.raises(pytest.fail.Exception, match="no daemon"):
        skip_or_fail("no daemon", environment={"CI": "1"})


def test_a_present_tool_is_returned_in_ci_and_out() -> None:
    for environment in ({}, {"CI": "1"}):
        assert require_tool("sh", "part of every Debian", environment=environment).endswith("/sh")


def test_the_ci_variable_of_the_process_is_read_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CI", "1")
    with pytest.raises(pytest.fail.Exception):
        require_tool(MISSING, "apt-get install it")
    monkeypatch.delenv("CI")
    with pytest.raises(pytest.skip.Exception):
        require_tool(MISSING, "apt-get install it")
