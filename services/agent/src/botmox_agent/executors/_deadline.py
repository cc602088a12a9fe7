"""The running command's deadline, for executors that wait (a Proxmox task).

The runtime sets it around :meth:`Executors.run` with :func:`command_deadline` (the ``command`` frame's
``deadline``); a context variable, so concurrent commands each see their own. An executor that waits
stops waiting at the deadline and says so in its error, rather than being cancelled without a word.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime

_deadline: ContextVar[datetime | None] = ContextVar("botmox_command_deadline", default=None)


@contextmanager
def command_deadline(deadline: datetime) -> Iterator[None]:
    """Within this block, executors bound their waits by ``deadline`` (a timezone-aware datetime)."""
    if deadline.tzinfo is None:
        raise ValueError("a command deadline is timezone-aware")
    token = _deadline.set(deadline)
    try:
        yield
    finally:
        _deadline.reset(token)


def remaining_seconds(default: float) -> float:
    """Seconds left before the running command's deadline (at most ``default``; 0 when past)."""
    deadline = _deadline.get()
    if deadline is None:
        return default
    return max(0.0, min(default, (deadline - datetime.now(UTC)).total_seconds()))
