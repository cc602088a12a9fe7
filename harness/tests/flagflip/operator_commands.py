"""The commands an operator types during a cutover, run as subprocesses exactly as typed.

``eval "$(python -m harness stack-env)"`` then ``python -m botmox_api.cutover ...``: the cutover gets
the caller's environment plus the variables ``stack-env`` exports (parsed from its output, so the
suite proves that output works), in a working directory of the stack's own (a backfill keeps its
checkpoint under ``./.cutover/``). ``python -m harness flip`` restarts the API in the other mode.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
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
            raise AssertionError(f"{self} printed no JSON document") from error
        assert isinstance(parsed, dict), self
        return parsed

    def __str__(self) -> str:
        return f"`python -m botmox_api.cutover {' '.join(self.args)}`: {transcript(self.result)}"


@dataclass(frozen=True)
class Operator:
    stack: StackUnderTest
    admin_env: Mapping[str, str]
    workdir: Path

    def cutover(self, *args: str) -> CutoverRun:
        """``python -m botmox_api.cutover ARGS`` in a shell where ``stack-env``'s exports were eval'ed."""
        result = subprocess.run(
            [sys.executable, "-m", "botmox_api.cutover", *args],
            env={**os.environ, **self.admin_env, "COLUMNS": "200", "NO_COLOR": "1", "TERM": "dumb"},
            cwd=self.workdir,
            capture_output=True,
            text=True,
            timeout=CUTOVER_TIMEOUT_S,
            check=False,
        )
        return CutoverRun(tuple(args), result)

    def cutover_json(self, *args: str, exit_code: int = 0) -> dict[str, Any]:
        """A ``--json`` run that must exit ``exit_code``; its document."""
        run = self.cutover(*args, "--json")
        assert run.exit_code == exit_code, str(run)
        return run.document

    def flip(self, backend: str, *options: str) -> subprocess.CompletedProcess[str]:
        """``python -m harness flip --backend BACKEND [OPTIONS]``; it must succeed."""
        return flip(self.stack, backend, *options)


def flip(stack: StackUnderTest, backend: str, *options: str) -> subprocess.CompletedProcess[str]:
    result = stack.cli("flip", "--backend", backend, *options)
    assert result.returncode == 0, (
        f"`flip --backend {backend} {' '.join(options)}` failed: {transcript(result)}"
    )
    return result
