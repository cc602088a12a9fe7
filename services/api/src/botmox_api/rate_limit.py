"""A fixed-window request counter per key, with bounded memory.

Keys are a principal (``tenant:uid``) or a client address. Every window the counter table starts
afresh (the old one is dropped whole), so memory is bounded by the distinct keys seen in one window;
``max_keys`` caps even that, refusing new keys' budgets rather than growing (the oldest keys are
evicted first). Single-threaded use on the event loop: no locks needed.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class RateDecision:
    allowed: bool
    retry_after_s: int = 0


_ALLOWED = RateDecision(True)


class FixedWindowRateLimiter:
    def __init__(
        self,
        max_requests: int,
        window_s: float,
        *,
        max_keys: int = 100_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._max = max_requests
        self._window = window_s
        self._max_keys = max_keys
        self._clock = clock
        self._window_start = clock()
        self._counts: dict[str, int] = {}

    @property
    def tracked_keys(self) -> int:
        return len(self._counts)

    def _roll(self) -> float:
        now = self._clock()
        elapsed = now - self._window_start
        if elapsed >= self._window:
            # Align to the window grid so Retry-After stays truthful after idle periods.
            self._window_start = now - (elapsed % self._window)
            self._counts = {}
        return now

    def _refused(self, now: float) -> RateDecision:
        remaining = self._window_start + self._window - now
        return RateDecision(False, max(1, math.ceil(remaining)))

    def peek(self, key: str) -> RateDecision:
        """Whether ``key`` has already spent its budget in this window, without counting a request."""
        now = self._roll()
        return _ALLOWED if self._counts.get(key, 0) < self._max else self._refused(now)

    def hit(self, key: str) -> RateDecision:
        now = self._roll()
        count = self._counts.get(key, 0) + 1
        if count == 1 and len(self._counts) >= self._max_keys:
            # Evict the oldest key rather than grow without bound.
            self._counts.pop(next(iter(self._counts)))
        self._counts[key] = count
        return _ALLOWED if count <= self._max else self._refused(now)
