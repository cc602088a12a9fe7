"""The server's session rules: hello first, then welcome; command frames only for commands sent."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest

from botmox_protocol import (
    CloseCode,
    CommandAckFrame,
    CommandFrame,
    CommandProgressFrame,
    CommandResultFrame,
    CommandState,
    ErrorCode,
    ErrorFrame,
    HeartbeatFrame,
    HelloFrame,
    InvalidParams,
    Limits,
    NotACapability,
    ServerPhase,
    ServerSession,
    SessionTerms,
    UnknownCommandKind,
    WelcomeFrame,
    encode_frame,
    parse_frame,
)

PARAMS: dict[str, Any] = {"credential": "secret://proxmox/pve1", "node": "pve1", "vmid": 101}


def hello(agent_id: str = "agent-1") -> HelloFrame:
    return HelloFrame(id="h1", agent_id=agent_id, agent_version="0.1.0", capabilities=("proxmox.vm.start",))


@pytest.fixture
def session(clock: Any, new_id: Callable[[], str]) -> ServerSession:
    return ServerSession(agent_id="agent-1", clock=clock, new_id=new_id)


@pytest.fixture
def open_session(session: ServerSession) -> ServerSession:
    session.receive(hello())
    return session


def only_error(reaction: Any) -> ErrorFrame:
    assert reaction.accepted is None
    (frame,) = reaction.send
    assert isinstance(frame, ErrorFrame)
    # Whatever a session sends is a valid frame on the wire.
    assert parse_frame(encode_frame(frame)) == frame
    return frame


def send(session: ServerSession, command_id: str = "c1", clock: Any = None) -> CommandFrame:
    deadline = (clock() if clock else session._clock()) + timedelta(minutes=5)
    return session.send_command(
        command_id=command_id, kind="proxmox.vm.start", params=PARAMS, deadline=deadline
    )


def test_hello_is_answered_with_welcome_and_the_terms(session: ServerSession, clock: Any) -> None:
    reaction = session.receive(hello())
    assert reaction.accepted == hello()
    (welcome,) = reaction.send
    assert isinstance(welcome, WelcomeFrame)
    assert welcome.protocol_version == 1
    assert welcome.server_time == clock()
    assert (welcome.heartbeat_interval_s, welcome.heartbeat_timeout_s) == (15, 45)
    assert welcome.limits == Limits(max_frame_bytes=512 * 1024, max_in_flight_commands=32)
    assert session.phase is ServerPhase.OPEN
    assert session.hello == hello()


@pytest.mark.parametrize(
    "first",
    [
        HeartbeatFrame(id="x1"),
        CommandAckFrame(id="x1", command_id="c1"),
        CommandResultFrame(id="x1", command_id="c1", ok=True, data=None),
    ],
)
def test_anything_but_hello_first_closes_the_connection(session: ServerSession, first: Any) -> None:
    reaction = session.receive(first)
    error = only_error(reaction)
    assert (error.code, error.ref) == (ErrorCode.OUT_OF_ORDER, "x1")
    assert reaction.close is CloseCode.PROTOCOL_VIOLATION
    assert session.phase is ServerPhase.CLOSED
    with pytest.raises(RuntimeError):
        session.receive(hello())


def test_a_hello_for_another_agent_than_the_credentials_is_refused(session: ServerSession) -> None:
    reaction = session.receive(hello("agent-2"))
    assert only_error(reaction).code is ErrorCode.OUT_OF_ORDER
    assert reaction.close is CloseCode.PROTOCOL_VIOLATION


def test_a_second_hello_is_out_of_order(open_session: ServerSession) -> None:
    reaction = open_session.receive(hello())
    assert only_error(reaction).code is ErrorCode.OUT_OF_ORDER
    assert reaction.close is None
    assert open_session.phase is ServerPhase.OPEN


@pytest.mark.parametrize("phase", ["before", "after"])
def test_frames_only_the_server_sends_are_out_of_order_from_the_agent(
    session: ServerSession, clock: Any, phase: str
) -> None:
    if phase == "after":
        session.receive(hello())
    welcome = WelcomeFrame(
        id="w9", protocol_version=1, server_time=clock(), heartbeat_interval_s=1, heartbeat_timeout_s=2,
        limits=Limits(max_frame_bytes=1024, max_in_flight_commands=1),
    )  # fmt: skip
    error = only_error(session.receive(welcome))
    assert (error.code, error.ref) == (ErrorCode.OUT_OF_ORDER, "w9")


def test_heartbeats_are_accepted_once_open(open_session: ServerSession) -> None:
    beat = HeartbeatFrame(id="b1")
    assert open_session.receive(beat).accepted == beat


def test_a_command_goes_through_ack_progress_and_result(open_session: ServerSession) -> None:
    command = send(open_session)
    assert (command.command_id, command.kind, command.params) == ("c1", "proxmox.vm.start", PARAMS)
    assert open_session.commands == {"c1": CommandState.SENT}
    for frame, state in [
        (CommandAckFrame(id="a1", command_id="c1"), CommandState.ACKED),
        (CommandProgressFrame(id="p1", command_id="c1", percent=50, message="starting"), CommandState.ACKED),
        (CommandResultFrame(id="r1", command_id="c1", ok=True, data={"on": 1}), CommandState.FINISHED),
    ]:  # fmt: skip
        reaction = open_session.receive(frame)
        assert reaction.accepted == frame
        assert reaction.send == ()
        assert open_session.commands["c1"] is state
    assert open_session.unfinished() == ()


@pytest.mark.parametrize(
    "frame",
    [
        CommandAckFrame(id="x1", command_id="never-sent"),
        CommandProgressFrame(id="x1", command_id="never-sent", percent=None, message=None),
        CommandResultFrame(id="x1", command_id="never-sent", ok=True, data=None),
    ],
)
def test_frames_for_a_command_never_sent_are_refused(open_session: ServerSession, frame: Any) -> None:
    send(open_session)
    error = only_error(open_session.receive(frame))
    assert (error.code, error.ref) == (ErrorCode.UNKNOWN_COMMAND, "x1")
    assert open_session.commands == {"c1": CommandState.SENT}


@pytest.mark.parametrize(
    "frame",
    [
        CommandProgressFrame(id="x1", command_id="c1", percent=10, message=None),
        CommandResultFrame(id="x1", command_id="c1", ok=True, data=None),
    ],
)
def test_progress_or_result_before_the_ack_is_out_of_order(open_session: ServerSession, frame: Any) -> None:
    send(open_session)
    assert only_error(open_session.receive(frame)).code is ErrorCode.OUT_OF_ORDER
    assert open_session.commands == {"c1": CommandState.SENT}


def test_a_result_is_accepted_once(open_session: ServerSession) -> None:
    send(open_session)
    open_session.receive(CommandAckFrame(id="a1", command_id="c1"))
    result = CommandResultFrame(id="r1", command_id="c1", ok=True, data=1)
    assert open_session.receive(result).accepted == result
    again = CommandResultFrame(id="r2", command_id="c1", ok=True, data=1)
    assert open_session.receive(again).accepted is None
    assert open_session.receive(again).send == ()
    assert open_session.receive(CommandAckFrame(id="a2", command_id="c1")).accepted is None
    late = CommandProgressFrame(id="p9", command_id="c1", percent=99, message=None)
    assert only_error(open_session.receive(late)).code is ErrorCode.OUT_OF_ORDER


def test_a_re_sent_command_keeps_its_id_and_gets_a_new_frame_id(open_session: ServerSession) -> None:
    first, again = send(open_session), send(open_session)
    assert first.command_id == again.command_id
    assert first.id != again.id
    assert open_session.unfinished() == ("c1",)


def test_commands_are_validated_and_sent_only_on_an_open_session(session: ServerSession, clock: Any) -> None:
    with pytest.raises(RuntimeError, match="open session"):
        send(session)
    session.receive(hello())
    deadline = clock() + timedelta(minutes=1)
    with pytest.raises(UnknownCommandKind):
        session.send_command(command_id="c1", kind="shell.exec", params={}, deadline=deadline)
    with pytest.raises(InvalidParams):
        session.send_command(command_id="c1", kind="proxmox.vm.start", params={}, deadline=deadline)
    with pytest.raises(InvalidParams):
        session.send_command(
            command_id="c1", kind="proxmox.vm.start", params=PARAMS, deadline=deadline.replace(tzinfo=None)
        )
    assert session.commands == {}


def test_in_flight_commands_are_bounded(clock: Any, new_id: Callable[[], str]) -> None:
    terms = SessionTerms(limits=Limits(max_frame_bytes=1024, max_in_flight_commands=2))
    session = ServerSession(agent_id="agent-1", terms=terms, clock=clock, new_id=new_id)
    session.receive(hello())
    send(session, "c1")
    send(session, "c2")
    assert not session.has_capacity
    with pytest.raises(RuntimeError, match="max_in_flight_commands"):
        send(session, "c3")
    send(session, "c1")  # a re-send is not one more
    session.receive(CommandAckFrame(id="a1", command_id="c1"))
    session.receive(CommandResultFrame(id="r1", command_id="c1", ok=True, data=None))
    assert session.has_capacity
    send(session, "c3")


def test_an_error_from_the_agent_is_reported_not_answered(open_session: ServerSession) -> None:
    error = ErrorFrame(id="e1", code=ErrorCode.INVALID_FRAME, message="m", ref="f7")
    reaction = open_session.receive(error)
    assert (reaction.peer_error, reaction.send, reaction.accepted) == (error, (), None)


def test_only_declared_and_allowlisted_kinds_are_sent(clock: Any, new_id: Callable[[], str]) -> None:
    session = ServerSession(agent_id="agent-1", clock=clock, new_id=new_id)
    assert session.capabilities == frozenset()
    declared = ("proxmox.vm.start", "syncthing.status", "future.kind")
    session.receive(HelloFrame(id="h1", agent_id="agent-1", agent_version="9.0.0", capabilities=declared))
    # A newer agent's kinds this server does not know are ignored.
    assert session.capabilities == {"proxmox.vm.start", "syncthing.status"}
    deadline = clock() + timedelta(minutes=1)
    with pytest.raises(NotACapability):
        session.send_command(command_id="c1", kind="proxmox.vm.stop", params=PARAMS, deadline=deadline)
    assert session.commands == {}
    assert session.send_command(command_id="c1", kind="syncthing.status", params={}, deadline=deadline)
