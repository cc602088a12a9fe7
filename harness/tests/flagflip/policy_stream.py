"""A bounded stream of storage-policy reads and writes over several tenants, run in a thread of its own
while the test restarts the API (``flip``) and runs the cutover.

Each tenant has exactly one writer, so its last acknowledged write is well defined, and one reader.
Every acknowledged write is recorded (tenant, method, body, document, ETag, time); every request that
got no answer or a 5xx is counted by kind. A write whose answer was lost (the connection broke after
the request went out, or a timeout) may or may not have landed: it is recorded as ``unknown``, since it
may be what the tenant holds afterwards. The stream stops by itself after ``max_writes`` writes per
tenant or ``duration_s`` seconds, whichever comes first, or when ``stop()`` is called.
"""

from __future__ import annotations

import asyncio
import collections
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx

STORAGE_POLICY = "/api/v1/settings/storage_policy"
# Under the API's rate limit (6000 requests a minute per principal) with a reader and a writer per
# tenant for the whole stream, and light enough for a 2-core machine shared by the stores.
PAUSE_S = 0.02
REQUEST_TIMEOUT_S = 5.0
# The bodies a writer cycles through: every write changes the document, PUTs and PATCHes alternate.
BODIES: tuple[tuple[str, dict[str, Any]], ...] = (
    ("PUT", {"operational": "local", "sync": {"enabled": True}}),
    ("PATCH", {"operational": "cloud"}),
    ("PATCH", {"sync": {"enabled": False}}),
    ("PUT", {"operational": "local"}),
    ("PATCH", {"sync": {"enabled": True}}),
    ("PUT", {"sync": {"enabled": False}}),
)


@dataclass(frozen=True, slots=True)
class Write:
    """One write the writer sent; ``document``/``etag`` are the API's answer (None when unknown)."""

    tenant: str
    sequence: int
    method: str
    body: dict[str, Any]
    sent_at: float
    answered_at: float
    document: dict[str, Any] | None = None
    etag: str | None = None


@dataclass(slots=True)
class StreamReport:
    acknowledged: list[Write] = field(default_factory=list)
    unknown: list[Write] = field(default_factory=list)
    failures: collections.Counter[str] = field(default_factory=collections.Counter)
    # When a failure of each kind was first and last seen (monotonic seconds since the start).
    failure_window: dict[str, tuple[float, float]] = field(default_factory=dict)
    reads: int = 0
    reads_ok: int = 0
    writes: int = 0
    seconds: float = 0.0

    def last_acknowledged(self, tenant: str) -> Write | None:
        mine = [write for write in self.acknowledged if write.tenant == tenant]
        return mine[-1] if mine else None

    def unknown_after(self, tenant: str, sequence: int) -> list[Write]:
        return [w for w in self.unknown if w.tenant == tenant and w.sequence > sequence]

    def summary(self) -> str:
        kinds = ", ".join(
            f"{kind}: {count} (t={self.failure_window[kind][0]:.2f}-{self.failure_window[kind][1]:.2f} s)"
            for kind, count in sorted(self.failures.items())
        )
        writes = f"{self.writes} writes ({len(self.acknowledged)} acknowledged, {len(self.unknown)} unknown)"
        reads = f"{self.reads} reads ({self.reads_ok} ok)"
        failed = f"failed requests by kind: {kinds or 'none'}"
        return f"policy stream: {self.seconds:.1f} s, {writes}, {reads}; {failed}"


def failure_kind(error: httpx.HTTPError) -> str:
    """What went wrong, in the words an operator would use; ``refused``: the request never reached
    a server (nothing can have been written)."""
    if isinstance(error, httpx.ConnectError):
        return "connection refused"
    if isinstance(error, httpx.TimeoutException):
        return "timeout"
    if isinstance(error, httpx.RemoteProtocolError | httpx.ReadError | httpx.WriteError):
        return "connection dropped"
    return type(error).__name__


class PolicyStream:
    """Run with ``start()``; ``stop()`` asks it to end; ``join()`` waits and returns the report."""

    def __init__(
        self,
        api_url: str,
        tokens: Mapping[str, str],
        *,
        max_writes: int,
        duration_s: float,
    ) -> None:
        self._api_url = api_url
        self._tokens = dict(tokens)
        self._max_writes = max_writes
        self._duration_s = duration_s
        self._stop = threading.Event()
        self._report = StreamReport()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name="policy-stream", daemon=True)
        self._started = 0.0
        self._error: BaseException | None = None
        # Readers stop with the last writer (the stream is bounded by its writes too).
        self._writers_left = len(self._tokens)

    # -- control, from the test's thread ---------------------------------------------------------

    def start(self) -> None:
        self._started = time.monotonic()
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def join(self) -> StreamReport:
        self._thread.join(timeout=self._duration_s + 30)
        if self._thread.is_alive():
            raise AssertionError("the policy stream did not stop by itself")
        if self._error is not None:
            raise AssertionError(f"the policy stream crashed: {self._error!r}") from self._error
        return self._report

    def acknowledged_count(self, tenant: str | None = None) -> int:
        with self._lock:
            return sum(1 for w in self._report.acknowledged if tenant is None or w.tenant == tenant)

    def wait_for_acknowledged(self, per_tenant: int, timeout_s: float) -> None:
        """Until every tenant has ``per_tenant`` more acknowledged writes than now."""
        base = {tenant: self.acknowledged_count(tenant) for tenant in self._tokens}
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if all(self.acknowledged_count(t) >= base[t] + per_tenant for t in self._tokens):
                return
            if not self._thread.is_alive():
                break
            time.sleep(0.05)
        raise AssertionError(
            f"the stream did not get {per_tenant} more writes acknowledged per tenant in {timeout_s} s: "
            + self._report.summary()
        )

    # -- the stream, in its own thread -----------------------------------------------------------

    def _run(self) -> None:
        try:
            asyncio.run(self._main())
        except BaseException as error:  # reported by join()
            self._error = error
        finally:
            self._report.seconds = time.monotonic() - self._started

    def _elapsed(self) -> float:
        return time.monotonic() - self._started

    def _over(self) -> bool:
        return self._stop.is_set() or self._elapsed() >= self._duration_s

    def _failed(self, kind: str) -> None:
        now = self._elapsed()
        with self._lock:
            self._report.failures[kind] += 1
            first, _ = self._report.failure_window.get(kind, (now, now))
            self._report.failure_window[kind] = (first, now)

    async def _main(self) -> None:
        # One connection pool per tenant and role: a restart breaks each one the way it breaks a client.
        tasks = []
        for tenant, token in self._tokens.items():
            tasks.append(self._writer(tenant, token))
            tasks.append(self._reader(tenant, token))
        await asyncio.gather(*tasks)

    def _client(self, token: str) -> httpx.AsyncClient:
        return httpx.AsyncClient(
            base_url=self._api_url,
            headers={"Authorization": f"Bearer {token}"},
            timeout=REQUEST_TIMEOUT_S,
            trust_env=False,
        )

    async def _writer(self, tenant: str, token: str) -> None:
        try:
            await self._write_all(tenant, token)
        finally:
            self._writers_left -= 1

    async def _write_all(self, tenant: str, token: str) -> None:
        async with self._client(token) as client:
            for sequence in range(self._max_writes):
                if self._over():
                    return
                method, body = BODIES[sequence % len(BODIES)]
                sent_at = self._elapsed()
                with self._lock:
                    self._report.writes += 1
                try:
                    answer = await client.request(method, STORAGE_POLICY, json=body)
                except httpx.HTTPError as error:
                    kind = failure_kind(error)
                    self._failed(f"write: {kind}")
                    if kind != "connection refused":
                        write = Write(tenant, sequence, method, body, sent_at, self._elapsed())
                        with self._lock:
                            self._report.unknown.append(write)
                    await asyncio.sleep(PAUSE_S)
                    continue
                if answer.status_code == 200:
                    write = Write(
                        tenant,
                        sequence,
                        method,
                        body,
                        sent_at,
                        self._elapsed(),
                        document=answer.json()["data"],
                        etag=answer.headers["etag"],
                    )
                    with self._lock:
                        self._report.acknowledged.append(write)
                else:
                    self._failed(f"write: HTTP {answer.status_code}")
                    if answer.status_code >= 500:
                        # A 5xx of a store ("nothing was half-written") or of the server: not acknowledged,
                        # and possibly applied when the answer is the server's own.
                        write = Write(tenant, sequence, method, body, sent_at, self._elapsed())
                        with self._lock:
                            self._report.unknown.append(write)
                await asyncio.sleep(PAUSE_S)

    async def _reader(self, tenant: str, token: str) -> None:
        async with self._client(token) as client:
            while not self._over() and self._writers_left > 0:
                with self._lock:
                    self._report.reads += 1
                try:
                    answer = await client.get(STORAGE_POLICY)
                except httpx.HTTPError as error:
                    self._failed(f"read: {failure_kind(error)}")
                else:
                    if answer.status_code == 200:
                        with self._lock:
                            self._report.reads_ok += 1
                    else:
                        self._failed(f"read: HTTP {answer.status_code}")
                await asyncio.sleep(PAUSE_S)
