"""``logs``: the tail of one service's log (or of all), optionally followed."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path

FOLLOW_POLL_S = 0.5
# `logs -f` ends by itself after this long, like every loop of the harness.
FOLLOW_LIMIT_S = 24 * 3600.0


def tail(path: Path, lines: int) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return ""
    kept = text.splitlines()[-lines:] if lines > 0 else []
    return "\n".join(kept)


def follow(
    paths: Sequence[Path],
    write: Callable[[str], None],
    *,
    keep_going: Callable[[], bool],
    limit_s: float = FOLLOW_LIMIT_S,
) -> None:
    """Write what is appended to the files, prefixed with the file's stem when there are several,
    until ``keep_going()`` turns false (the stack went down) or ``limit_s`` passes."""
    offsets = {path: _size(path) for path in paths}
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline and keep_going():
        for path in paths:
            size = _size(path)
            if size < offsets[path]:
                offsets[path] = 0  # the file was replaced by a new stack's log
            if size > offsets[path]:
                with path.open("rb") as handle:
                    handle.seek(offsets[path])
                    chunk = handle.read(size - offsets[path]).decode(errors="replace")
                offsets[path] = size
                for line in chunk.splitlines():
                    write(f"{path.stem} | {line}" if len(paths) > 1 else line)
        time.sleep(FOLLOW_POLL_S)


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0
