"""The agent's side of one connection, as pure state over the command journal: which frames are allowed
when, what the agent answers, and which commands to run. No I/O: the runtime sends `hello()`, hands
each parsed frame to `receive`, sends what the reaction says, runs `reaction.execute` when set, and
reports through `progress` and `complete`.

At most once: a command is journaled before it runs. A command id the journal knows is never run again:
a finished one is answered with its journaled result, one still running with an ack (its result
follows when it finishes). A result is sent only on a connection that received the command; one that
finishes while disconnected waits in the journal for the server's re-send.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from pydantic import ValidationError

from botmox_protocol.codec import encode_frame
from botmox_protocol.errors import (
    FrameTooLarge,
    OutOfOrder,
    ProtocolError,
    UnsupportedVersion,
)
from botmox_protocol.frames import (
    SENT_BY_SERVER,
    SUPPORTED_VERSIONS,
    CommandAckFrame,
    CommandFrame,
    CommandProgressFrame,
    CommandResultFrame,
    ErrorFrame,
    Frame,
    HeartbeatFrame,
    HelloFrame,
    WelcomeFrame,
)
from botmox_protocol.journal import (
    DEADLINE_EXCEEDED,
    INVALID_RESULT,
    RESULT_TOO_LARGE,
    UNSUPPORTED_KIND,
    CommandJournal,
    Outcome,
)
from botmox_protocol.limits import (
    MAX_FRAME_BYTES,
    MAX_PROGRESS_MESSAGE_CHARS,
    MAX_RESULT_DATA_BYTES,
    json_text_bytes,
)
from botmox_protocol.sources import new_frame_id, utc_now


class AgentPhase(StrEnum):
    NEW = "new"
    AWAITING_WELCOME = "awaiting_welcome"
    OPEN = "open"


@dataclass(frozen=True)
class AgentReaction:
    # Frames to send, in order.
    send: tuple[Frame, ...] = ()
    # A command to run now (journaled as accepted, not yet finished).
    execute: CommandFrame | None = None
    # The server reported that a frame of ours broke the protocol.
    peer_error: ErrorFrame | None = None


class AgentSession:
    def __init__(
        self,
        *,
        agent_id: str,
        agent_version: str,
        capabilities: Iterable[str],
        journal: CommandJournal,
        clock: Callable[[], datetime] = utc_now,
        new_id: Callable[[], str] = new_frame_id,
    ) -> None:
        self.agent_id = agent_id
        self.agent_version = agent_version
        self.capabilities = tuple(capabilities)
        self._journal = journal
        self._clock = clock
        self._new_id = new_id
        self.phase = AgentPhase.NEW
        self.welcome: WelcomeFrame | None = None
        # Server time minus ours at welcome: deadlines are the server's instants.
        self._skew = timedelta(0)
        # Command ids received on this connection, and those finished since.
        self._received: set[str] = set()
        self._finished: set[str] = set()

    def hello(self) -> HelloFrame:
        if self.phase is not AgentPhase.NEW:
            raise RuntimeError("hello is the first frame of a connection, sent once")
        self.phase = AgentPhase.AWAITING_WELCOME
        return HelloFrame(
            id=self._new_id(),
            agent_id=self.agent_id,
            agent_version=self.agent_version,
            capabilities=self.capabilities,
        )

    def heartbeat(self) -> HeartbeatFrame:
        if self.phase is not AgentPhase.OPEN:
            raise RuntimeError("heartbeats are sent on an open session")
        return HeartbeatFrame(id=self._new_id())

    def reject(self, error: ProtocolError) -> ErrorFrame:
        """The `error` frame answering a frame that failed to parse or broke the session."""
        return error.to_frame(self._new_id())

    def receive(self, frame: Frame) -> AgentReaction:
        if isinstance(frame, ErrorFrame):
            return AgentReaction(peer_error=frame)
        if frame.type not in SENT_BY_SERVER:
            return self._refuse(
                OutOfOrder(f"{frame.type} is sent by the agent, not the server", ref=frame.id)
            )
        if isinstance(frame, WelcomeFrame):
            return self._welcome(frame)
        if isinstance(frame, CommandFrame):
            return self._command(frame)
        raise AssertionError(f"unhandled frame type {frame.type}")  # pragma: no cover

    def progress(
        self, command_id: str, *, percent: int | None = None, message: str | None = None
    ) -> CommandProgressFrame | None:
        """The progress frame to send, or None when this connection did not receive the command or the
        command has finished (progress after the result is out of order)."""
        if command_id not in self._received or command_id in self._finished:
            return None
        if message is not None:
            message = message[:MAX_PROGRESS_MESSAGE_CHARS]
        return CommandProgressFrame(
            id=self._new_id(), command_id=command_id, percent=percent, message=message
        )

    def complete(self, command_id: str, outcome: Outcome) -> CommandResultFrame | None:
        """Journal the outcome; the result frame to send, or None when this connection did not receive
        the command (the server re-sends it after reconnecting and gets the result from the journal).

        An outcome that no result frame can carry is journaled as a failure in its place, since the
        peer would refuse it on this connection and on every replay: RESULT_TOO_LARGE when its data is
        over MAX_RESULT_DATA_BYTES or its frame over the frame limit, INVALID_RESULT when its data is not
        JSON (a datetime, NaN) or it is ok with an error."""
        limit = self.max_frame_bytes
        try:
            if outcome.data is not None and json_text_bytes(outcome.data) > MAX_RESULT_DATA_BYTES:
                raise FrameTooLarge
            frame = self._result(command_id, outcome)
            encode_frame(frame, max_bytes=limit)
        except (ValidationError, TypeError, ValueError):
            outcome = Outcome.failure(INVALID_RESULT, "the executor's outcome is not a valid result")
            frame = self._result(command_id, outcome)
        except FrameTooLarge:
            outcome = Outcome.failure(RESULT_TOO_LARGE, "the result's data is over the size limit")
            frame = self._result(command_id, outcome)
        self._journal.finish(command_id, outcome)
        self._finished.add(command_id)
        return frame if command_id in self._received else None

    @property
    def max_frame_bytes(self) -> int:
        """The largest frame to send: ours, or the server's when its welcome announced less."""
        if self.welcome is None:
            return MAX_FRAME_BYTES
        return min(MAX_FRAME_BYTES, self.welcome.limits.max_frame_bytes)

    def _welcome(self, frame: WelcomeFrame) -> AgentReaction:
        if self.phase is not AgentPhase.AWAITING_WELCOME:
            return self._refuse(OutOfOrder(f"welcome while {self.phase}", ref=frame.id))
        if frame.protocol_version not in SUPPORTED_VERSIONS:
            return self._refuse(
                UnsupportedVersion(f"protocol_version {frame.protocol_version}", ref=frame.id)
            )
        self.welcome = frame
        self._skew = frame.server_time - self._clock()
        self.phase = AgentPhase.OPEN
        return AgentReaction()

    def _command(self, frame: CommandFrame) -> AgentReaction:
        if self.phase is not AgentPhase.OPEN:
            return self._refuse(OutOfOrder("command before welcome", ref=frame.id))
        command_id = frame.command_id
        self._received.add(command_id)
        ack = CommandAckFrame(id=self._new_id(), command_id=command_id)
        entry = self._journal.get(command_id)
        if entry is not None:
            if entry.outcome is None:
                return AgentReaction(send=(ack,))
            return AgentReaction(send=(ack, self._result(command_id, entry.outcome)))
        refusal = self._refusal(frame)
        self._journal.accept(frame)
        if refusal is not None:
            self._journal.finish(command_id, refusal)
            return AgentReaction(send=(ack, self._result(command_id, refusal)))
        return AgentReaction(send=(ack,), execute=frame)

    def _refusal(self, frame: CommandFrame) -> Outcome | None:
        """The outcome of a command that must not run at all, journaled like any other."""
        if frame.kind not in self.capabilities:
            return Outcome.failure(UNSUPPORTED_KIND, f"this agent does not run {frame.kind}")
        if self._clock() + self._skew >= frame.deadline:
            return Outcome.failure(DEADLINE_EXCEEDED, "the deadline passed before the command could start")
        return None

    def _result(self, command_id: str, outcome: Outcome) -> CommandResultFrame:
        return CommandResultFrame(
            id=self._new_id(), command_id=command_id, ok=outcome.ok, data=outcome.data, error=outcome.error
        )

    def _refuse(self, error: ProtocolError) -> AgentReaction:
        return AgentReaction(send=(self.reject(error),))
