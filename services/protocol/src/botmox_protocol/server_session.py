"""The server's side of one agent connection, as pure state: which frames are allowed when, and what
the server answers. No I/O: the runtime parses a message, hands the frame to `receive`, sends what the
reaction says, stores what it accepts, and closes when it says so.

Order: the agent's first frame is `hello` (anything else closes with 4400); the server answers
`welcome`. After that `command.ack`, `command.progress` and `command.result` must name a command sent
on this connection, the ack first; a result already received is a duplicate and ignored, so it is
stored once.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from pydantic import JsonValue, ValidationError

from botmox_protocol.close_codes import CloseCode
from botmox_protocol.errors import InvalidParams, OutOfOrder, ProtocolError, UnknownCommand
from botmox_protocol.frames import (
    PROTOCOL_VERSION,
    SENT_BY_AGENT,
    CommandAckFrame,
    CommandFrame,
    CommandProgressFrame,
    CommandResultFrame,
    ErrorFrame,
    Frame,
    HeartbeatFrame,
    HelloFrame,
    Limits,
    WelcomeFrame,
)
from botmox_protocol.kinds import COMMAND_KINDS
from botmox_protocol.limits import MAX_FRAME_BYTES
from botmox_protocol.registry import CommandRegistry
from botmox_protocol.sources import new_frame_id, utc_now
from botmox_protocol.validation import describe_errors


@dataclass(frozen=True)
class SessionTerms:
    """What the server's `welcome` announces."""

    heartbeat_interval_s: int = 15
    heartbeat_timeout_s: int = 45
    limits: Limits = field(
        default_factory=lambda: Limits(max_frame_bytes=MAX_FRAME_BYTES, max_in_flight_commands=32)
    )


class NotACapability(ValueError):
    """A command of a kind the agent did not declare in its hello: refused before it is sent."""


class ServerPhase(StrEnum):
    AWAITING_HELLO = "awaiting_hello"
    OPEN = "open"
    CLOSED = "closed"


class CommandState(StrEnum):
    SENT = "sent"
    ACKED = "acked"
    FINISHED = "finished"


@dataclass(frozen=True)
class ServerReaction:
    # Frames to send, in order.
    send: tuple[Frame, ...] = ()
    # The agent's frame for the runtime to act on (store the hello, last seen, ack, progress, result);
    # None when the frame was refused or a duplicate.
    accepted: Frame | None = None
    # Close the connection with this code after sending.
    close: CloseCode | None = None
    # The agent reported that a frame of ours broke the protocol.
    peer_error: ErrorFrame | None = None


class ServerSession:
    def __init__(
        self,
        *,
        agent_id: str,
        terms: SessionTerms | None = None,
        registry: CommandRegistry = COMMAND_KINDS,
        clock: Callable[[], datetime] = utc_now,
        new_id: Callable[[], str] = new_frame_id,
    ) -> None:
        # The agent the connection's credential belongs to; its hello must name the same.
        self.agent_id = agent_id
        self.terms = terms or SessionTerms()
        self._registry = registry
        self._clock = clock
        self._new_id = new_id
        self.phase = ServerPhase.AWAITING_HELLO
        self.hello: HelloFrame | None = None
        self._commands: dict[str, CommandState] = {}

    @property
    def commands(self) -> Mapping[str, CommandState]:
        """Commands sent on this connection and how far each got."""
        return dict(self._commands)

    def unfinished(self) -> tuple[str, ...]:
        return tuple(cid for cid, state in self._commands.items() if state is not CommandState.FINISHED)

    @property
    def capabilities(self) -> frozenset[str]:
        """The kinds this agent can be sent: those its hello declared that the allowlist has (a newer
        agent may declare kinds this server does not know; they are ignored)."""
        if self.hello is None:
            return frozenset()
        return frozenset(self.hello.capabilities) & self._registry.names()

    @property
    def has_capacity(self) -> bool:
        return len(self.unfinished()) < self.terms.limits.max_in_flight_commands

    def reject(self, error: ProtocolError) -> ErrorFrame:
        """The `error` frame answering a frame that failed to parse or broke the session."""
        return error.to_frame(self._new_id())

    def receive(self, frame: Frame) -> ServerReaction:
        if self.phase is ServerPhase.CLOSED:
            raise RuntimeError("the session is closed")
        if isinstance(frame, ErrorFrame):
            return ServerReaction(peer_error=frame)
        if frame.type not in SENT_BY_AGENT:
            return self._refuse(
                OutOfOrder(f"{frame.type} is sent by the server, not the agent", ref=frame.id)
            )
        if self.phase is ServerPhase.AWAITING_HELLO:
            return self._first(frame)
        return self._open(frame)

    def send_command(
        self, *, command_id: str, kind: str, params: dict[str, JsonValue], deadline: datetime
    ) -> CommandFrame:
        """The frame carrying a command (a re-send of the same id gets a new frame id, same command)."""
        if self.phase is not ServerPhase.OPEN:
            raise RuntimeError(f"commands are sent on an open session, not {self.phase}")
        if command_id not in self._commands and not self.has_capacity:
            raise RuntimeError("max_in_flight_commands reached")
        self._registry.validate(kind, params)
        if kind not in self.capabilities:
            raise NotACapability(f"agent {self.agent_id} does not run {kind}")
        try:
            frame = CommandFrame(
                id=self._new_id(), command_id=command_id, kind=kind, params=params, deadline=deadline
            )
        except ValidationError as exc:  # over MAX_PARAMS_BYTES, not JSON, a naive deadline
            raise InvalidParams(describe_errors(exc)) from None
        self._commands.setdefault(command_id, CommandState.SENT)
        return frame

    def close(self) -> None:
        self.phase = ServerPhase.CLOSED

    def _first(self, frame: Frame) -> ServerReaction:
        if not isinstance(frame, HelloFrame):
            return self._refuse(
                OutOfOrder(f"the first frame is hello, not {frame.type}", ref=frame.id),
                close=CloseCode.PROTOCOL_VIOLATION,
            )
        if frame.agent_id != self.agent_id:
            return self._refuse(
                OutOfOrder("hello names another agent than the credential's", ref=frame.id),
                close=CloseCode.PROTOCOL_VIOLATION,
            )
        self.hello = frame
        self.phase = ServerPhase.OPEN
        welcome = WelcomeFrame(
            id=self._new_id(),
            protocol_version=PROTOCOL_VERSION,
            server_time=self._clock(),
            heartbeat_interval_s=self.terms.heartbeat_interval_s,
            heartbeat_timeout_s=self.terms.heartbeat_timeout_s,
            limits=self.terms.limits,
        )
        return ServerReaction(send=(welcome,), accepted=frame)

    def _open(self, frame: Frame) -> ServerReaction:
        if isinstance(frame, HeartbeatFrame):
            return ServerReaction(accepted=frame)
        if isinstance(frame, CommandAckFrame | CommandProgressFrame | CommandResultFrame):
            return self._command_frame(frame)
        return self._refuse(OutOfOrder(f"{frame.type} after the session opened", ref=frame.id))

    def _command_frame(
        self, frame: CommandAckFrame | CommandProgressFrame | CommandResultFrame
    ) -> ServerReaction:
        state = self._commands.get(frame.command_id)
        if state is None:
            return self._refuse(UnknownCommand(f"{frame.type} for a command never sent", ref=frame.id))
        if state is CommandState.FINISHED:
            if isinstance(frame, CommandProgressFrame):
                return self._refuse(OutOfOrder("command.progress after command.result", ref=frame.id))
            # A re-sent ack or result of a finished command: already stored, nothing to do.
            return ServerReaction()
        if isinstance(frame, CommandAckFrame):
            self._commands[frame.command_id] = CommandState.ACKED
            return ServerReaction(accepted=frame)
        if state is CommandState.SENT:
            # The agent acks before anything else about a command, replays included.
            return self._refuse(OutOfOrder(f"{frame.type} before command.ack", ref=frame.id))
        if isinstance(frame, CommandResultFrame):
            self._commands[frame.command_id] = CommandState.FINISHED
        return ServerReaction(accepted=frame)

    def _refuse(self, error: ProtocolError, *, close: CloseCode | None = None) -> ServerReaction:
        if close is not None:
            self.phase = ServerPhase.CLOSED
        return ServerReaction(send=(self.reject(error),), close=close)
