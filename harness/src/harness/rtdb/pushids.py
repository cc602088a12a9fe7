"""Push ids as RTDB makes them: 20 characters, sortable by creation time, unique."""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable

PUSH_CHARS = "-0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ_abcdefghijklmnopqrstuvwxyz"
_TIME_CHARS = 8
_RANDOM_CHARS = 12
_BASE = len(PUSH_CHARS)


class PushIdGenerator:
    """8 characters of milliseconds, then 12 random ones incremented within the same millisecond.

    The increment keeps ids strictly increasing even when many are made in one millisecond, and a
    clock that steps backwards reuses the last timestamp rather than producing an older id.
    """

    def __init__(self, clock_ms: Callable[[], int] | None = None) -> None:
        self._clock_ms = clock_ms or (lambda: time.time_ns() // 1_000_000)
        self._last_ms = -1
        self._last_random: list[int] = []

    def next_id(self) -> str:
        now = max(self._clock_ms(), self._last_ms)
        if now == self._last_ms:
            self._increment()
        else:
            self._last_ms = now
            self._last_random = [secrets.randbelow(_BASE) for _ in range(_RANDOM_CHARS)]
        stamp = []
        remaining = self._last_ms
        for _ in range(_TIME_CHARS):
            stamp.append(PUSH_CHARS[remaining % _BASE])
            remaining //= _BASE
        return "".join(reversed(stamp)) + "".join(PUSH_CHARS[digit] for digit in self._last_random)

    def _increment(self) -> None:
        for position in range(_RANDOM_CHARS - 1, -1, -1):
            if self._last_random[position] < _BASE - 1:
                self._last_random[position] += 1
                return
            self._last_random[position] = 0
        # All 64**12 ids of this millisecond are used up: borrow the next millisecond.
        self._last_ms += 1
