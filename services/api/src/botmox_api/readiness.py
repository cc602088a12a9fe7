"""The stores' readiness as the health endpoints report it, probed at most once per TTL.

Health needs no token and is exempt from the rate limit, so anyone may call it at any rate. Probing
the stores on every call would let such a flood compete with user traffic, so every answer reuses
the last probe while it is younger than ``HEALTH_CACHE_TTL_S``. Once it is older, the first caller
starts one probe and every caller that arrives meanwhile awaits that same probe (single flight).
A failed probe is kept just as long as a successful one, so a down store is not hammered either.
Any number of health requests thus costs each store at most one probe per TTL.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Final

from botmox_api.model import Readiness
from botmox_api.stores.protocols import StoreSet

CHECK_TIMEOUT_S: Final = 3.0


@dataclass(frozen=True, slots=True)
class StoreReadiness:
    supabase: Readiness
    rtdb: Readiness


async def _bounded(check: Awaitable[Readiness], timeout_s: float) -> Readiness:
    try:
        return await asyncio.wait_for(check, timeout_s)
    except TimeoutError:
        return Readiness(False, f"Check timed out after {timeout_s:g} s")
    except Exception as error:  # a check must never turn health into a 500
        return Readiness(False, f"Check failed: {type(error).__name__}")


class ReadinessCache:
    """One per application; it belongs to the event loop that first calls ``current``."""

    def __init__(
        self,
        stores: StoreSet,
        *,
        ttl_s: float,
        check_timeout_s: float = CHECK_TIMEOUT_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._stores = stores
        self._ttl_s = ttl_s
        self._check_timeout_s = check_timeout_s
        self._clock = clock
        self._result: StoreReadiness | None = None
        self._obtained_at = 0.0
        self._probe: asyncio.Task[StoreReadiness] | None = None

    async def current(self) -> StoreReadiness:
        if self._result is not None and self._clock() - self._obtained_at < self._ttl_s:
            return self._result
        if self._probe is None:
            self._probe = asyncio.create_task(self._run_probe(), name="botmox-readiness-probe")
        # Shielded: a caller that goes away must not cancel the probe the other callers await.
        return await asyncio.shield(self._probe)

    async def _run_probe(self) -> StoreReadiness:
        try:
            supabase, rtdb = await asyncio.gather(
                _bounded(self._stores.check_supabase(), self._check_timeout_s),
                _bounded(self._stores.check_rtdb(), self._check_timeout_s),
            )
            # The TTL runs from when the answer is known, so a slow probe is not followed at once
            # by the next one.
            self._result, self._obtained_at = StoreReadiness(supabase, rtdb), self._clock()
            return self._result
        finally:
            self._probe = None

    async def aclose(self) -> None:
        """Cancel a probe still running, before the stores it uses are closed."""
        probe, self._probe = self._probe, None
        if probe is not None:
            probe.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await probe
