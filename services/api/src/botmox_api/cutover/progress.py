"""Progress on stderr, so that stdout holds only the result (``--json`` included): a rich progress
bar in a terminal, otherwise one plain line per batch (CI logs, ops' ssh sessions piped to a file),
both saying tenants done/total, the command's counts so far and the rate."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Protocol, TextIO

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn


class ProgressReport(Protocol):
    def start(self, total: int, *, resumed_at: int = 0) -> None: ...

    def update(self, done: int, counts: Mapping[str, int]) -> None:
        """``done`` tenants of ``total`` handled; ``counts`` are the figures shown beside them."""
        ...

    def stop(self) -> None: ...


def _figures(counts: Mapping[str, int]) -> str:
    return "".join(f", {value} {name}" for name, value in counts.items())


class LineProgress:
    """A line per batch: ``backfill rtdb -> supabase: 1500/10000 tenants, 1480 written, 0 skipped,
    3100 tenants/s``."""

    def __init__(self, title: str, stream: TextIO) -> None:
        self._title = title
        self._stream = stream
        self._total = 0
        self._resumed_at = 0
        self._started = time.monotonic()

    def start(self, total: int, *, resumed_at: int = 0) -> None:
        self._total, self._resumed_at = total, resumed_at
        self._started = time.monotonic()

    def update(self, done: int, counts: Mapping[str, int]) -> None:
        elapsed = time.monotonic() - self._started
        rate = (done - self._resumed_at) / elapsed if elapsed > 0 else 0.0
        self._stream.write(
            f"{self._title}: {done}/{self._total} tenants{_figures(counts)}, {rate:.0f} tenants/s\n"
        )
        self._stream.flush()

    def stop(self) -> None:
        return None


class BarProgress:
    """rich's bar, redrawn in place, for a terminal."""

    def __init__(self, title: str, console: Console) -> None:
        self._progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[figures]}"),
            TimeElapsedColumn(),
            console=console,
            transient=True,
        )
        self._task = self._progress.add_task(title, total=None, figures="")

    def start(self, total: int, *, resumed_at: int = 0) -> None:
        self._progress.update(self._task, total=total, completed=resumed_at)
        self._progress.start()

    def update(self, done: int, counts: Mapping[str, int]) -> None:
        self._progress.update(self._task, completed=done, figures=_figures(counts).removeprefix(", "))

    def stop(self) -> None:
        self._progress.stop()


def progress_for(title: str, stream: TextIO) -> ProgressReport:
    """The bar when ``stream`` is a terminal, the plain lines otherwise."""
    if stream.isatty():
        return BarProgress(title, Console(file=stream))
    return LineProgress(title, stream)
