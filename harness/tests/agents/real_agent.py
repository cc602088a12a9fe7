"""The real agent (``botmox_agent.runtime.run_agent``) in-process, for the end-to-end suite.

``InProcessAgent`` runs the agent's own runtime (pairing, vault, sqlite journal, tunnel, local HTTP
server) on an event loop in a thread of its own, so a synchronous test drives the stack, the proxy and
the agent side by side; its structured log goes to a buffer the test reads. The executors are the
test's: ``GatedExecutors`` counts every run and can hold runs until the test releases them (the
command is "in the middle" while the test restarts the API or drops the connection), around real
executors (``botmox_agent.executors.build_executors``) or a trivial answer.
"""

from __future__ import annotations

import asyncio
import io
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

import httpx
from pydantic import BaseModel, JsonValue

from botmox_agent.executors import Executors, Progress, SecretResolver
from botmox_agent.runtime import AgentSettings, RunOptions, StateDir, TunnelEnded, run_agent
from botmox_agent.runtime._logging import agent_logger
from botmox_agent.vault import KdfCost, PassphraseKeySource, SecretValue, Vault
from botmox_protocol import COMMAND_KINDS, reconnect_delay

PASSPHRASE: Final = "e2e vault passphrase, not a secret of anyone"
# libsodium's minimum Argon2id cost: the vault's key derivation is not what this suite tests.
CHEAP_COST: Final = KdfCost(opslimit=1, memlimit=8192)
HOLD_LIMIT_S: Final = 60.0
START_TIMEOUT_S: Final = 60.0


def fast_reconnects(attempt: int) -> float:
    """The agent's policy (full jitter, doubling) on a shorter scale, so a test waits seconds."""
    return reconnect_delay(attempt, base_s=0.2, cap_s=2.0)


def create_vault(path: Path, secrets: dict[str, str]) -> None:
    """A passphrase vault at ``path`` holding ``secrets`` (name -> value)."""
    vault = Vault.create(path, PassphraseKeySource(SecretValue(PASSPHRASE), CHEAP_COST))
    for name, value in secrets.items():
        vault.set(name, SecretValue(value))


class GatedExecutors:
    """The test's executors: every kind of the allowlist (or ``inner``'s), runs counted per kind;
    while ``hold`` is set a run waits for ``release()`` before it answers."""

    def __init__(self, inner: Executors | None = None, *, hold: bool = False) -> None:
        self._inner = inner
        self._lock = threading.Lock()
        self._released = not hold
        # Runs waiting for the release, each with the loop it waits on (the agent's, not the test's).
        self._waiting: list[tuple[asyncio.AbstractEventLoop, asyncio.Event]] = []
        self.runs: Counter[str] = Counter()
        self.started = threading.Event()

    def kinds(self) -> frozenset[str]:
        return self._inner.kinds() if self._inner is not None else COMMAND_KINDS.names()

    async def run(self, kind: str, params: BaseModel, progress: Progress) -> JsonValue:
        self.runs[kind] += 1
        self.started.set()
        gate = asyncio.Event()
        with self._lock:
            if self._released:
                gate.set()
            else:
                self._waiting.append((asyncio.get_running_loop(), gate))
        # Cancellable: an agent stopped while a run is held ends it like any running command.
        await asyncio.wait_for(gate.wait(), HOLD_LIMIT_S)
        if self._inner is not None:
            return await self._inner.run(kind, params, progress)
        await progress(50, "halfway")
        return {"ran": kind}

    def release(self) -> None:
        with self._lock:
            self._released = True
            waiting, self._waiting = self._waiting, []
        for loop, gate in waiting:
            loop.call_soon_threadsafe(gate.set)

    async def aclose(self) -> None:
        if self._inner is not None:
            await self._inner.aclose()


@dataclass
class InProcessAgent:
    """``run_agent`` with ``settings`` in a thread; ``start`` returns once its HTTP server listens."""

    settings: AgentSettings
    executors_factory: Callable[[AgentSettings, SecretResolver], Executors]
    log_buffer: io.StringIO = field(default_factory=io.StringIO)
    ended: TunnelEnded | None = None
    error: BaseException | None = None
    http_port: int | None = None
    _loop: asyncio.AbstractEventLoop | None = None
    _stop: asyncio.Event | None = None
    _thread: threading.Thread | None = None
    _ready: threading.Event = field(default_factory=threading.Event)

    def start(self) -> InProcessAgent:
        self._thread = threading.Thread(target=self._main, name="in-process-agent", daemon=True)
        self._thread.start()
        if not self._ready.wait(START_TIMEOUT_S) or self.http_port is None:
            raise AssertionError(f"the agent did not start: {self.error!r}\n{self.log_text()}")
        return self

    def _main(self) -> None:
        try:
            asyncio.run(self._run())
        except BaseException as error:
            self.error = error
        finally:
            self._ready.set()

    async def _run(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()

        def ready(port: int) -> None:
            self.http_port = port
            self._ready.set()

        self.ended = await run_agent(
            self.settings,
            executors_factory=self.executors_factory,
            stop=self._stop,
            log=agent_logger(self.log_buffer),
            options=RunOptions(delay=fast_reconnects, shutdown_grace_s=5.0, on_http_ready=ready),
        )

    def stop(self) -> TunnelEnded | None:
        if self._loop is not None and self._stop is not None and self._loop.is_running():
            self._loop.call_soon_threadsafe(self._stop.set)
        if self._thread is not None:
            self._thread.join(timeout=30)
            assert not self._thread.is_alive(), "the agent did not stop"
        return self.ended

    @property
    def agent_id(self) -> str:
        identity = StateDir(self.settings.state_dir).read_identity()
        assert identity is not None, "the agent is not paired"
        return identity.agent_id

    def healthz(self) -> httpx.Response:
        return httpx.get(f"http://127.0.0.1:{self.http_port}/healthz", timeout=5, trust_env=False)

    def wait_connected(self, timeout_s: float = 30.0) -> None:
        """Until ``/healthz`` says a ``welcome`` arrived on the current connection."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.error is not None or (self._thread is not None and not self._thread.is_alive()):
                raise AssertionError(f"the agent stopped: {self.error!r} {self.ended}\n{self.log_text()}")
            if self.healthz().status_code == 200:
                return
            time.sleep(0.05)
        raise AssertionError(f"the agent did not connect in {timeout_s} s:\n{self.log_text()}")

    def log_text(self) -> str:
        return self.log_buffer.getvalue()
