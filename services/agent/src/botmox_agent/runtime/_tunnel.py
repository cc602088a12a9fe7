"""The tunnel: one outbound WebSocket to the control plane at a time, driven by
``botmox_protocol.AgentSession`` (docs/agent-protocol.md), reconnecting with ``reconnect_delay``.

At most once (the protocol's rules 1-5): the session journals a command before its ack and its
outcome before its result; a re-sent command is answered from the journal. Commands run as tasks of
the tunnel, not of a connection: one that finishes after a reconnect reports through the session of
the connection current then, which sends its result only if that connection received the command
(else the server's re-send gets it from the journal).

Stopping (``stop`` set): no more frames are read, so no new command is accepted (the server re-sends
unacknowledged ones to the next process); running commands get ``shutdown_grace_s`` to finish and
report, the rest are finished as INTERRUPTED; the connection closes with 1001.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final

import websockets
from pydantic import ValidationError
from websockets.asyncio.client import ClientConnection, connect

from botmox_agent.executors import CommandFailed, Executors, command_deadline
from botmox_agent.runtime import _metrics
from botmox_agent.runtime._logging import AgentLog
from botmox_agent.runtime._metrics import AgentMetrics
from botmox_agent.runtime._status import StatusRecorder
from botmox_agent.vault import SecretValue
from botmox_protocol import (
    COMMAND_KINDS,
    TRANSPORT_MAX_BYTES,
    AgentPhase,
    AgentSession,
    CloseCode,
    CommandFrame,
    CommandJournal,
    Frame,
    JournalEntry,
    Outcome,
    ProtocolError,
    WelcomeFrame,
    encode_frame,
    parse_frame,
    reconnect_delay,
    should_reconnect,
)
from botmox_protocol.journal import DEADLINE_EXCEEDED, INTERRUPTED, INVALID_RESULT
from botmox_protocol.sources import utc_now

WS_PATH: Final = "/api/v1/agents/ws"
AGENT_ID_HEADER: Final = "X-Botmox-Agent-Id"
# An executor that raised something other than CommandFailed: its message may hold anything, so the
# result says only this.
EXECUTOR_ERROR: Final = "EXECUTOR_ERROR"
# Close codes for an HTTP refusal of the upgrade itself (a gate or proxy in front of the tunnel).
_HTTP_REFUSALS: Final = {401: CloseCode.BAD_CREDENTIAL, 403: CloseCode.REVOKED}


def ws_url(server_url: str) -> str:
    """The tunnel's URL under the control plane's base URL: http -> ws, https -> wss."""
    scheme, rest = server_url.split("://", 1)
    return {"http": "ws", "https": "wss"}[scheme] + "://" + rest.rstrip("/") + WS_PATH


@dataclass(frozen=True)
class TunnelConfig:
    server_url: str
    agent_id: str
    credential: SecretValue
    agent_version: str
    tls: ssl.SSLContext
    ping_interval_s: float = 20.0
    ping_timeout_s: float = 20.0
    open_timeout_s: float = 10.0
    shutdown_grace_s: float = 20.0


@dataclass(frozen=True)
class TunnelEnded:
    """Why `run` returned: a close code no retry can fix, or None when `stop` was set."""

    final_close_code: int | None = None
    reason: str = ""


@dataclass
class _Link:
    """One open connection and its session."""

    ws: ClientConnection
    session: AgentSession
    welcomed: bool = False
    # Until the welcome, the wait for it; then the heartbeats.
    heartbeat: asyncio.Task[None] | None = None

    async def send(self, frame: Frame) -> None:
        with contextlib.suppress(websockets.ConnectionClosed):
            await self.ws.send(encode_frame(frame, max_bytes=self.session.max_frame_bytes))


class Tunnel:
    def __init__(
        self,
        config: TunnelConfig,
        *,
        executors: Executors,
        journal: CommandJournal,
        metrics: AgentMetrics,
        status: StatusRecorder,
        log: AgentLog,
        delay: Callable[[int], float] = reconnect_delay,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self._config = config
        self._executors = executors
        self._journal = journal
        self._metrics = metrics
        self._status = status
        self._log = log.bind(agent_id=config.agent_id)
        self._delay = delay
        self._clock = clock
        self._capabilities = tuple(sorted(executors.kinds() & COMMAND_KINDS.names()))
        self._link: _Link | None = None
        self._skew = timedelta(0)
        self._running: dict[str, asyncio.Task[None]] = {}

    def health(self) -> tuple[bool, dict[str, object]]:
        """For /healthz: healthy once a welcome arrived on the current connection."""
        link = self._link
        healthy = link is not None and link.welcomed
        return healthy, {
            "status": "ok" if healthy else "unavailable",
            "state": self._status.current.state,
            "agent_id": self._config.agent_id,
            "running_commands": len(self._running),
        }

    async def run(self, stop: asyncio.Event) -> TunnelEnded:
        attempt = 0
        reconnect = False
        try:
            while not stop.is_set():
                if reconnect:
                    self._metrics.reconnects.inc()
                self._status.connecting(reconnect=reconnect)
                reconnect = True
                code, welcomed = await self._connect_once(stop)
                if welcomed:
                    attempt = 0
                if code is not None and not should_reconnect(code):
                    return TunnelEnded(code, _final_reason(code))
                if stop.is_set():
                    break
                delay = self._delay(attempt)
                attempt += 1
                self._log.info("agent.reconnect_scheduled", attempt=attempt, delay_s=round(delay, 3))
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), delay)
            return TunnelEnded(None, "stopped")
        finally:
            await self._drain()
            self._status.stopped()

    async def _connect_once(self, stop: asyncio.Event) -> tuple[int | None, bool]:
        """One connection, from opening to its close: its close code (None: it never opened) and
        whether a welcome arrived on it."""
        config = self._config
        url = ws_url(config.server_url)
        headers = {
            "Authorization": f"Bearer {config.credential.reveal()}",
            AGENT_ID_HEADER: config.agent_id,
        }
        try:
            async with connect(
                url,
                additional_headers=headers,
                ssl=config.tls if url.startswith("wss://") else None,
                max_size=TRANSPORT_MAX_BYTES,
                ping_interval=config.ping_interval_s,
                ping_timeout=config.ping_timeout_s,
                open_timeout=config.open_timeout_s,
                close_timeout=5,
                compression=None,
                user_agent_header=f"botmox-agent/{config.agent_version}",
            ) as ws:
                link = _Link(ws, self._new_session())
                self._link = link
                try:
                    await self._converse(link, stop)
                finally:
                    self._link = None
                    self._metrics.connected.set(0)
            code = ws.close_code
        except websockets.InvalidStatus as refusal:
            status_code = refusal.response.status_code
            self._log.warning("agent.connect_refused", http_status=status_code)
            self._status.disconnected(None)
            return _HTTP_REFUSALS.get(status_code), False
        except (OSError, TimeoutError, websockets.InvalidHandshake, websockets.InvalidURI) as error:
            self._log.warning("agent.connect_failed", error=type(error).__name__, detail=_safe_detail(error))
            self._status.disconnected(None)
            return None, False
        reason = ws.close_reason or ""
        self._log.info(
            "agent.disconnected", close_code=code, close_reason=reason[:200], welcomed=link.welcomed
        )
        self._status.disconnected(code)
        return code, link.welcomed

    def _new_session(self) -> AgentSession:
        return AgentSession(
            agent_id=self._config.agent_id,
            agent_version=self._config.agent_version,
            capabilities=self._capabilities,
            journal=self._journal,
            clock=self._clock,
        )

    async def _converse(self, link: _Link, stop: asyncio.Event) -> None:
        await link.send(link.session.hello())
        reader = asyncio.create_task(self._read(link))
        stopping = asyncio.create_task(stop.wait())
        # A server that opens the WebSocket but never welcomes is as good as down: try again later.
        link.heartbeat = asyncio.create_task(self._await_welcome(link))
        try:
            done, _ = await asyncio.wait({reader, stopping}, return_when=asyncio.FIRST_COMPLETED)
            if reader in done:
                reader.result()
                return
            # Stopping: read no more (no new command is accepted), let running ones report.
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reader
            await self._drain()
            await link.ws.close(CloseCode.GOING_AWAY, "agent stopping")
        finally:
            for task in (reader, stopping, link.heartbeat):
                if task is not None:
                    task.cancel()

    async def _read(self, link: _Link) -> None:
        with contextlib.suppress(websockets.ConnectionClosed):
            async for message in link.ws:
                await self._on_message(link, message)

    async def _on_message(self, link: _Link, message: str | bytes) -> None:
        session = link.session
        try:
            frame = parse_frame(message)
        except ProtocolError as error:
            self._log.warning("frame.refused", code=error.code, ref=error.ref)
            await link.send(session.reject(error))
            return
        known = self._journal.get(frame.command_id) if isinstance(frame, CommandFrame) else None
        reaction = session.receive(frame)
        if reaction.peer_error is not None:
            peer = reaction.peer_error
            self._log.warning("peer.error", code=peer.code, message=peer.message, ref=peer.ref)
        for outgoing in reaction.send:
            if outgoing.type == "error":
                self._log.warning("frame.refused", code=getattr(outgoing, "code", None), ref=frame.id)
            await link.send(outgoing)
        if isinstance(frame, WelcomeFrame) and session.phase is AgentPhase.OPEN and not link.welcomed:
            self._welcomed(link, frame)
        elif isinstance(frame, CommandFrame):
            self._command_received(link, frame, known, reaction.execute)

    def _welcomed(self, link: _Link, welcome: WelcomeFrame) -> None:
        link.welcomed = True
        self._skew = welcome.server_time - self._clock()
        self._metrics.connected.set(1)
        self._status.connected()
        self._log.info(
            "agent.connected",
            server_url=self._config.server_url,
            heartbeat_interval_s=welcome.heartbeat_interval_s,
            capabilities=len(self._capabilities),
        )
        if link.heartbeat is not None:
            link.heartbeat.cancel()
        link.heartbeat = asyncio.create_task(self._heartbeat(link, welcome.heartbeat_interval_s))

    async def _await_welcome(self, link: _Link) -> None:
        await asyncio.sleep(self._config.open_timeout_s)
        if not link.welcomed:
            self._log.warning("agent.no_welcome", waited_s=self._config.open_timeout_s)
            await link.ws.close(CloseCode.NORMAL, "no welcome")

    async def _heartbeat(self, link: _Link, interval_s: int) -> None:
        while True:
            await asyncio.sleep(interval_s)
            await link.send(link.session.heartbeat())

    def _command_received(
        self, link: _Link, frame: CommandFrame, known: JournalEntry | None, execute: CommandFrame | None
    ) -> None:
        log = self._log.bind(command_id=frame.command_id, kind=frame.kind)
        if execute is not None:
            log.info("command.accepted")
            task = asyncio.create_task(self._execute(link.session, execute))
            task.add_done_callback(self._command_task_done)
            self._running[frame.command_id] = task
            return
        entry = self._journal.get(frame.command_id)
        if entry is None:  # refused by the session before the journal (out of order)
            return
        if known is not None:
            self._metrics.commands.labels(frame.kind, _metrics.REPLAYED).inc()
            log.info("command.replayed", finished=entry.outcome is not None)
            return
        code = entry.outcome.error.code if entry.outcome and entry.outcome.error else None
        self._metrics.commands.labels(frame.kind, _metrics.REFUSED).inc()
        log.info("command.refused", code=code)

    def _command_task_done(self, task: asyncio.Task[None]) -> None:
        # Every outcome is caught inside the task; what escapes is the runtime's own failure (the
        # journal's disk), logged here rather than lost with the task.
        if not task.cancelled() and task.exception() is not None:
            self._log.error("command.task_failed", error=type(task.exception()).__name__)

    async def _execute(self, origin: AgentSession, frame: CommandFrame) -> None:
        started = time.monotonic()
        try:
            outcome = await self._outcome(frame)
        except asyncio.CancelledError:
            # Stopped past the shutdown grace: finished and reported now, not left to the next start.
            interrupted = Outcome.failure(
                INTERRUPTED, "the agent stopped while the command ran; its effect is unknown"
            )
            await self._finish(origin, frame, interrupted, started)
            raise
        finally:
            self._running.pop(frame.command_id, None)
        await self._finish(origin, frame, outcome, started)

    async def _outcome(self, frame: CommandFrame) -> Outcome:
        params = COMMAND_KINDS.validate(frame.kind, frame.params)
        remaining_s = (frame.deadline - (self._clock() + self._skew)).total_seconds()

        async def progress(percent: int | None, message: str | None) -> None:
            await self._progress(frame.command_id, percent, message)

        seconds_left = max(remaining_s, 0.0)
        try:
            # The executors bound their own waits by the same figure (and answer a little before it,
            # naming what they waited for); the timeout is the backstop.
            with command_deadline(seconds_left):
                async with asyncio.timeout(seconds_left):
                    data = await self._executors.run(frame.kind, params, progress)
        except CommandFailed as failure:
            try:
                return Outcome.failure(failure.code, failure.message)
            except ValidationError:
                return Outcome.failure(INVALID_RESULT, "the executor failed with a code off the protocol")
        except TimeoutError:
            return Outcome.failure(
                DEADLINE_EXCEEDED, "the command did not finish before its deadline; its effect is unknown"
            )
        except Exception as error:
            # Its message may quote anything (a URL with a token): only its type is logged.
            self._log.error("command.executor_error", command_id=frame.command_id, error=type(error).__name__)
            return Outcome.failure(EXECUTOR_ERROR, "the executor failed unexpectedly; see the agent's log")
        return Outcome.success(data)

    async def _progress(self, command_id: str, percent: int | None, message: str | None) -> None:
        link = self._link
        if link is None:
            return
        try:
            frame = link.session.progress(command_id, percent=percent, message=message)
        except ValidationError:
            self._log.warning("command.progress_invalid", command_id=command_id)
            return
        if frame is not None:
            await link.send(frame)

    async def _finish(
        self, origin: AgentSession, frame: CommandFrame, outcome: Outcome, started: float
    ) -> None:
        """Journal the outcome (the session's `complete`), then send the result on the current
        connection if it received the command; count and log it."""
        command_id, kind = frame.command_id, frame.kind
        link = self._link
        session = link.session if link is not None else origin
        result = session.complete(command_id, outcome)
        if result is not None and link is not None and link.session is session:
            await link.send(result)
        duration = time.monotonic() - started
        entry = self._journal.get(command_id)
        # What was journaled: `complete` may have put RESULT_TOO_LARGE or INVALID_RESULT in its place.
        journaled = entry.outcome if entry is not None and entry.outcome is not None else outcome
        code = journaled.error.code if journaled.error is not None else None
        self._metrics.commands.labels(kind, _metrics.SUCCEEDED if journaled.ok else _metrics.FAILED).inc()
        self._metrics.command_duration.labels(kind).observe(duration)
        self._status.command_finished()
        self._log.info(
            "command.finished",
            command_id=command_id,
            kind=kind,
            outcome="succeeded" if journaled.ok else "failed",
            code=code,
            duration_s=round(duration, 3),
        )

    async def _drain(self) -> None:
        """Wait for running commands up to the grace period; cancel (INTERRUPTED) what remains."""
        tasks = list(self._running.values())
        if not tasks:
            return
        self._log.info("agent.draining", running=len(tasks), grace_s=self._config.shutdown_grace_s)
        _, pending = await asyncio.wait(tasks, timeout=self._config.shutdown_grace_s)
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.wait(pending)


def _final_reason(code: int) -> str:
    if code == CloseCode.BAD_CREDENTIAL:
        return "the server refused this agent's credential (4401: unknown or revoked): pair the agent again"
    if code == CloseCode.REVOKED:
        return "this agent was revoked (4403): pair it again with a new code if it should come back"
    if code == CloseCode.PROTOCOL_VIOLATION:
        return "the server closed for a protocol violation (4400): update the agent"
    return f"the server closed with {code}, after which the agent does not reconnect"


def _safe_detail(error: Exception) -> str:
    """An error's text for the log, cut short; connection errors name hosts and reasons, not secrets."""
    return str(error)[:200]
