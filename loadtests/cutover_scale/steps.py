"""The steps ``make cutover-scale`` times: the cutover tool run as ops run it, one process per step,
and the table of what each took.

Each step is ``python -m botmox_api.cutover <command> ... --json`` with the API's variables and
nothing else of the caller's environment, in an empty working directory (no stray ``.env``, a
backfill's checkpoint kept there). Its time is the whole process's, start-up included: what ops
wait for. The figures besides the time (tenants, writes) are the tool's own ``--json`` document.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from botmox_api.model import JsonObject

STEP_TIMEOUT_S: Final = 900.0
"""A step that takes longer is stopped: every run is bounded."""
TOOL: Final = ("-m", "botmox_api.cutover")


@dataclass(frozen=True, slots=True)
class StepSpec:
    name: str
    arguments: tuple[str, ...]
    expected_exit: int


@dataclass(frozen=True, slots=True)
class StepResult:
    name: str
    seconds: float
    tenants: int | None
    writes: int | None
    """What the tool reports as written; ``None`` for a command that never writes."""
    exit_code: int
    expected_exit: int
    output_tail: str = ""
    """The end of stderr (and of stdout when it is no JSON), for a step that went wrong."""

    @property
    def as_expected(self) -> bool:
        return self.exit_code == self.expected_exit

    @property
    def tenants_per_second(self) -> float | None:
        if self.tenants is None or self.seconds <= 0:
            return None
        return self.tenants / self.seconds


def tool_environment(variables: Mapping[str, str]) -> dict[str, str]:
    """The caller's environment without any of the API's own configuration, plus ``variables``."""
    prefixes = ("SUPABASE_", "FIREBASE_", "API_", "DATA_BACKEND", "DEFAULT_TENANT_ID", "APP_ENV", "STORAGE_")
    environment = {key: value for key, value in os.environ.items() if not key.startswith(prefixes)}
    environment.update(variables)
    return environment


def _int_or_none(document: JsonObject, key: str) -> int | None:
    value = document.get(key)
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def result_of(spec: StepSpec, seconds: float, exit_code: int, stdout: str, stderr: str) -> StepResult:
    """What one finished step amounts to: its ``--json`` document's ``tenants`` and ``written``."""
    try:
        parsed = json.loads(stdout)
    except json.JSONDecodeError:
        parsed = None
    document: JsonObject = parsed if isinstance(parsed, dict) else {}
    tail = stderr.strip()[-2000:]
    if not document:
        tail = (stdout.strip()[-1000:] + "\n" + tail).strip()
    return StepResult(
        name=spec.name,
        seconds=seconds,
        tenants=_int_or_none(document, "tenants"),
        writes=_int_or_none(document, "written"),
        exit_code=exit_code,
        expected_exit=spec.expected_exit,
        output_tail=tail,
    )


def run(spec: StepSpec, *, environment: Mapping[str, str], cwd: Path) -> StepResult:
    """Run one step to its end (or ``STEP_TIMEOUT_S``) and time it."""
    argv = [sys.executable, *TOOL, *spec.arguments, "--json"]
    began = time.monotonic()
    try:
        done = subprocess.run(  # noqa: S603 - this interpreter, the tool's fixed arguments
            argv,
            env=dict(environment),
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=STEP_TIMEOUT_S,
            check=False,
        )
    except subprocess.TimeoutExpired as expired:
        # subprocess.run has killed the child by its PID already.
        return StepResult(
            spec.name, time.monotonic() - began, None, None, -9, spec.expected_exit, f"timed out: {expired}"
        )
    return result_of(spec, time.monotonic() - began, done.returncode, done.stdout, done.stderr)


def _figure(value: float | None, digits: int = 0) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


def _exit(result: StepResult) -> str:
    return (
        str(result.exit_code)
        if result.as_expected
        else f"{result.exit_code} (expected {result.expected_exit})"
    )


def table(results: Sequence[StepResult]) -> list[str]:
    """The figures as aligned lines: step, seconds, tenants/s, writes, exit code (and what was expected)."""
    header = ("step", "seconds", "tenants", "tenants/s", "writes", "exit")
    rows = [
        (
            result.name,
            f"{result.seconds:.1f}",
            _figure(result.tenants),
            _figure(result.tenants_per_second),
            _figure(result.writes),
            _exit(result),
        )
        for result in results
    ]
    widths = [max(len(row[column]) for row in (header, *rows)) for column in range(len(header))]

    def line(cells: Sequence[str]) -> str:
        first = cells[0].ljust(widths[0])
        rest = (cell.rjust(width) for cell, width in zip(cells[1:], widths[1:], strict=True))
        return "  ".join((first, *rest)).rstrip()

    return [line(header), *(line(row) for row in rows)]
