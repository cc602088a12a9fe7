"""The agent's reconnect delay: exponential from 1 s to 30 s with full jitter.

Full jitter (a uniform draw between 0 and the exponential ceiling) spreads a crowd of agents that lost
the same server at the same instant across the whole window, rather than bunching them at the ceiling.
The draw is injected, so the policy is a pure function.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable

BASE_DELAY_S = 1.0
MAX_DELAY_S = 30.0


def backoff_ceiling(attempt: int, *, base_s: float = BASE_DELAY_S, cap_s: float = MAX_DELAY_S) -> float:
    """The largest delay before reconnect attempt `attempt` (0 for the first after a drop)."""
    if attempt < 0:
        raise ValueError("attempt counts from 0")
    # base * 2**attempt, the exponent bounded: the cap is reached long before a float would overflow.
    return min(cap_s, math.ldexp(base_s, min(attempt, 64)))


def reconnect_delay(
    attempt: int,
    *,
    draw: Callable[[], float] = random.random,
    base_s: float = BASE_DELAY_S,
    cap_s: float = MAX_DELAY_S,
) -> float:
    """Seconds to wait before reconnect attempt `attempt`: `draw()` (in [0, 1)) times the ceiling.

    The agent counts attempts from 0 after a connection drops and resets the count when a `welcome`
    arrives, so a flapping server is retried ever more slowly and a healthy one at once.
    """
    fraction = draw()
    if not 0.0 <= fraction < 1.0:
        raise ValueError("draw() must return a number in [0, 1)")
    return fraction * backoff_ceiling(attempt, base_s=base_s, cap_s=cap_s)
