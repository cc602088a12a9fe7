"""The running command's time limit, for executors that wait (a Proxmox task).

The runtime sets it around :meth:`Executors.run` with :func:`command_deadline`, from the seconds left
before the ``command`` frame's ``deadline`` (the same figure it gives ``asyncio.timeout``). A context
variable on the monotonic clock, so concurrent commands each see their own and a change of the wall
clock does not move it. An executor that waits stops :data:`ANSWER_MARGIN_S` before the limit and
says what it was waiting for (a task's id), so its answer, not the runtime's bare timeout, is the
command's result.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Final

ANSWER_MARGIN_S: Final = 1.0

_ends: ContextVar[float | None] = ContextVar("botmox_command_ends", default=None)


@contextmanager
def command_deadline(seconds_left: float) -> Iterator[None]:
    """Within this block, executors bound their waits by ``seconds_left`` from now."""
    token = _ends.set(time.monotonic() + seconds_left)
    try:
        yield
    finally:
        _ends.reset(token)


def remaining_seconds(default: float) -> float:
    """How long an executor may still wait: at most ``default``, and ``ANSWER_MARGIN_S`` short of the
    command's limit when one is set (0 when that is past)."""
    ends = _ends.get()
    if ends is None:
        return default
    return max(0.0, min(default, ends - ANSWER_MARGIN_S - time.monotonic()))
