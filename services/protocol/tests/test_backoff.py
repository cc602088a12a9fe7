"""The reconnect delay: exponential ceiling from 1 s to 30 s, full jitter, injected draws."""

from __future__ import annotations

import random

import pytest

from botmox_protocol import BASE_DELAY_S, MAX_DELAY_S, backoff_ceiling, reconnect_delay


def test_the_ceiling_doubles_from_one_second_up_to_thirty() -> None:
    assert [backoff_ceiling(n) for n in range(7)] == [1, 2, 4, 8, 16, 30, 30]
    assert (BASE_DELAY_S, MAX_DELAY_S) == (1.0, 30.0)
    assert backoff_ceiling(10_000) == 30.0


def test_the_delay_is_the_draw_times_the_ceiling() -> None:
    assert reconnect_delay(0, draw=lambda: 0.0) == 0.0
    assert reconnect_delay(3, draw=lambda: 0.5) == 4.0
    assert reconnect_delay(50, draw=lambda: 0.999) == pytest.approx(29.97)


@pytest.mark.parametrize("attempt", [0, 1, 2, 3, 4, 5, 6, 20, 1000])
def test_delays_stay_within_zero_and_the_ceiling(attempt: int) -> None:
    rng = random.Random(attempt)
    delays = [reconnect_delay(attempt, draw=rng.random) for _ in range(2000)]
    assert all(0.0 <= delay < backoff_ceiling(attempt) for delay in delays)
    assert max(delays) <= MAX_DELAY_S


def test_a_crowd_of_agents_is_spread_over_the_whole_window() -> None:
    # 1,000 agents losing the same server at once, on their sixth attempt (ceiling 30 s): full
    # jitter spreads them evenly, so no one-second slot gets much more than its 1/30 share.
    rng = random.Random(16)
    delays = [reconnect_delay(5, draw=rng.random) for _ in range(1000)]
    slots = [0] * 30
    for delay in delays:
        slots[int(delay)] += 1
    assert min(slots) >= 15
    assert max(slots) <= 60
    assert min(delays) < 1.0
    assert max(delays) > 29.0


def test_the_default_draw_is_random() -> None:
    delays = {reconnect_delay(5) for _ in range(20)}
    assert len(delays) > 1


def test_bad_inputs_are_refused() -> None:
    with pytest.raises(ValueError, match="from 0"):
        reconnect_delay(-1, draw=lambda: 0.5)
    for bad in (1.0, -0.1, 2.0):
        with pytest.raises(ValueError, match=r"\[0, 1\)"):
            reconnect_delay(1, draw=lambda bad=bad: bad)
