"""The commands an operator types during a cutover, run as subprocesses exactly as typed.

``eval "$(python -m harness stack-env)"`` then ``python -m botmox_api.cutover ...``: the cutover gets
the caller's environment plus the variables ``stack-env`` exports (parsed from its output, so the
suite proves that output works). ``python -m harness flip`` restarts the API in the other mode.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from harness.fixtures.cli_stack import StackUnderTest, transcript

CUTOVER_TIMEOUT_S = 120.0


@dataclass(frozen=True)
class CutoverRun:
    """One run of the cutover tool: its exit code, output and (with ``--json``) its document."""

    args: tuple[str, ...]
    result: subprocess.CompletedProcess[str]

    @property
    def exit_code(self) -> int:
        return self.result.returncode

    @property
    def document(self) -> dict[str, Any]:
        try:
            parsed = json.loads(self.result.stdout)
        except json.JSONDecodeError as error:
            raise AssertionError(f"`cutover {' '.join(self.args)}` printed no JSON: {self}") from error
        assert isinstance(parsed, dict), self
        return parsed

    def __str__(self) -> str:
        return f"`python -m botmox_api.cutover {' '.join(self.args)}`: {transcript(self.result)}"


def cutover(admin_env: Mapping[str, str], *args: str) -> CutoverRun:
    """``python -m botmox_api.cutover ARGS`` in a shell where ``stack-env``'s exports were eval'ed."""
    result = subprocess.run(
        [sys.executable, "-m", "botmox_api.cutover", *args],
        env={**os.environ, **admin_env, "COLUMNS": "200", "NO_COLOR": "1", "TERM": "dumb"},
        capture_output=True,
        text=True,
        timeout=CUTOVER_TIMEOUT_S,
        check=False,
    )
    return CutoverRun(tuple(args), result)


def flip(stack: StackUnderTest, backend: str, *options: str) -> subprocess.CompletedProcess[str]:
    """``python -m harness flip --backend BACKEND [OPTIONS]``; it must succeed."""
    result = stack.cli("flip", "--backend", backend, *options)
    assert result.returncode == 0, f"`flip --backend {backend}` failed: {transcript(result)}"
    return result
