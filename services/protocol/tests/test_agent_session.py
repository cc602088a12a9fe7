"""The agent's session rules and at-most-once execution over the journal."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import pytest

from botmox_protocol import (
    MAX_FRAME_BYTES,
    MAX_RESULT_DATA_BYTES,
    AgentPhase,
    AgentSession,
    CommandAckFrame,
    CommandFrame,
    CommandProgressFrame,
    CommandResultFrame,
    ErrorCode,
    ErrorFrame,
    HeartbeatFrame,
    HelloFrame,
    Limits,
    Outcome,
    WelcomeFrame,
    encode_frame,
    parse_frame,
    recover_interrupted,
)
from botmox_protocol.journal import (
    DEADLINE_EXCEEDED,
    INTERRUPTED,
    INVALID_RESULT,
    RESULT_TOO_LARGE,
    UNSUPPORTED_KIND,
)

CAPABILITIES = ("proxmox.vm.start", "syncthing.status")
PARAMS: dict[str, Any] = {"credential": "secret://proxmox/pve1", "node": "pve1", "vmid": 101}


def welcome(server_time: datetime, frame_id: str = "w1") -> WelcomeFrame:
    return WelcomeFrame(
        id=frame_id, protocol_version=1, server_time=server_time, heartbeat_interval_s=15,
        heartbeat_timeout_s=45, limits=Limits(max_frame_bytes=524288, max_in_flight_commands=32),
    )  # fmt: skip


def command(
    clock: Any, command_id: str = "c1", frame_id: str = "m1", kind: str = "proxmox.vm.start", minutes: int = 5
) -> CommandFrame:
    params = {} if kind == "syncthing.status" else PARAMS
    return CommandFrame(
        id=frame_id, command_id=command_id, kind=kind, params=params,
        deadline=clock() + timedelta(minutes=minutes),
    )  # fmt: skip


def connect(journal: Any, clock: Any, new_id: Callable[[], str]) -> AgentSession:
    session = AgentSession(
        agent_id="agent-1", agent_version="0.1.0", capabilities=CAPABILITIES, journal=journal,
        clock=clock, new_id=new_id,
    )  # fmt: skip
    session.hello()
    assert session.receive(welcome(clock())).send == ()
    return session


def on_wire(frames: tuple[Any, ...]) -> tuple[Any, ...]:
    # Whatever a session sends is a valid frame on the wire.
    return tuple(parse_frame(encode_frame(frame)) for frame in frames)


def kinds(frames: tuple[Any, ...]) -> list[str]:
    return [frame.type for frame in on_wire(frames)]


@pytest.fixture
def session(journal: Any, clock: Any, new_id: Callable[[], str]) -> AgentSession:
    return connect(journal, clock, new_id)


def test_hello_then_welcome_opens_the_session(journal: Any, clock: Any, new_id: Callable[[], str]) -> None:
    session = AgentSession(
        agent_id="agent-1", agent_version="0.1.0", capabilities=CAPABILITIES, journal=journal,
        clock=clock, new_id=new_id,
    )  # fmt: skip
    with pytest.raises(RuntimeError):
        session.heartbeat()
    hello = session.hello()
    assert hello == HelloFrame(id="f1", agent_id="agent-1", agent_version="0.1.0", capabilities=CAPABILITIES)
    assert session.phase is AgentPhase.AWAITING_WELCOME
    with pytest.raises(RuntimeError):
        session.hello()
    early = session.receive(command(clock))
    assert [(f.code, f.ref) for f in on_wire(early.send)] == [(ErrorCode.OUT_OF_ORDER, "m1")]
    assert early.execute is None
    assert session.receive(welcome(clock())).send == ()
    assert session.phase is AgentPhase.OPEN
    assert session.welcome == welcome(clock())
    assert isinstance(session.heartbeat(), HeartbeatFrame)
    assert journal.writes == []


def test_a_second_welcome_is_out_of_order(session: AgentSession, clock: Any) -> None:
    (error,) = on_wire(session.receive(welcome(clock(), "w2")).send)
    assert (error.code, error.ref) == (ErrorCode.OUT_OF_ORDER, "w2")


def test_a_welcome_of_another_version_is_refused(journal: Any, clock: Any, new_id: Callable[[], str]) -> None:
    session = AgentSession(agent_id="a", agent_version="1", capabilities=(), journal=journal, new_id=new_id)
    session.hello()
    newer = welcome(clock()).model_copy(update={"protocol_version": 2})
    (error,) = on_wire(session.receive(newer).send)
    assert error.code is ErrorCode.UNSUPPORTED_VERSION
    assert session.phase is AgentPhase.AWAITING_WELCOME


def test_frames_only_the_agent_sends_are_out_of_order_from_the_server(session: AgentSession) -> None:
    for frame in (
        HelloFrame(id="x1", agent_id="agent-1", agent_version="1", capabilities=()),
        HeartbeatFrame(id="x1"),
        CommandAckFrame(id="x1", command_id="c1"),
        CommandResultFrame(id="x1", command_id="c1", ok=True, data=None),
    ):
        (error,) = on_wire(session.receive(frame).send)
        assert (error.code, error.ref) == (ErrorCode.OUT_OF_ORDER, "x1")


def test_a_new_command_is_journaled_acked_and_run(session: AgentSession, journal: Any, clock: Any) -> None:
    frame = command(clock)
    reaction = session.receive(frame)
    assert kinds(reaction.send) == ["command.ack"]
    assert reaction.execute == frame
    # Journaled before it runs.
    assert journal.writes == [("accept", "c1")]
    progress = session.progress("c1", percent=40, message="starting")
    assert progress == CommandProgressFrame(id=progress.id, command_id="c1", percent=40, message="starting")
    result = session.complete("c1", Outcome.success({"status": "running"}))
    assert result is not None
    assert (result.ok, result.data, result.error) == (True, {"status": "running"}, None)
    assert journal.writes == [("accept", "c1"), ("finish", "c1")]


def test_a_replayed_finished_command_is_answered_from_the_journal(
    journal: Any, clock: Any, new_id: Callable[[], str]
) -> None:
    first = connect(journal, clock, new_id)
    first.receive(command(clock))
    sent = first.complete("c1", Outcome.failure("PROXMOX_UNREACHABLE", "connection refused"))
    # The connection drops before the server stores the result; it re-sends on the next one.
    again = connect(journal, clock, new_id)
    reaction = again.receive(command(clock, frame_id="m2"))
    assert reaction.execute is None
    ack, result = on_wire(reaction.send)
    assert (ack.type, ack.command_id) == ("command.ack", "c1")
    assert isinstance(result, CommandResultFrame)
    assert sent is not None
    assert (result.ok, result.error) == (sent.ok, sent.error)
    assert journal.writes == [("accept", "c1"), ("finish", "c1")]


def test_a_replayed_running_command_is_acked_and_not_run_again(
    journal: Any, clock: Any, new_id: Callable[[], str]
) -> None:
    first = connect(journal, clock, new_id)
    assert first.receive(command(clock)).execute is not None
    again = connect(journal, clock, new_id)
    reaction = again.receive(command(clock, frame_id="m2"))
    assert (kinds(reaction.send), reaction.execute) == (["command.ack"], None)
    # It finishes: the result goes out on the connection that received the command again.
    result = again.complete("c1", Outcome.success())
    assert result is not None
    assert journal.writes == [("accept", "c1"), ("finish", "c1")]


def test_a_result_finished_while_disconnected_waits_for_the_re_send(
    journal: Any, clock: Any, new_id: Callable[[], str]
) -> None:
    first = connect(journal, clock, new_id)
    first.receive(command(clock))
    again = connect(journal, clock, new_id)
    assert again.progress("c1", percent=90) is None
    assert again.complete("c1", Outcome.success(7)) is None
    assert journal.get("c1").outcome == Outcome.success(7)
    _ack, result = on_wire(again.receive(command(clock, frame_id="m2")).send)
    assert (result.ok, result.data) == (True, 7)


def test_a_kind_outside_the_capabilities_fails_without_running(
    session: AgentSession, journal: Any, clock: Any
) -> None:
    frame = command(clock, kind="proxmox.vm.clone")
    reaction = session.receive(frame.model_copy(update={"params": {}}))
    assert reaction.execute is None
    _ack, result = on_wire(reaction.send)
    assert (result.ok, result.error.code) == (False, UNSUPPORTED_KIND)
    assert journal.get("c1").outcome.error.code == UNSUPPORTED_KIND


def test_a_command_past_its_deadline_by_the_servers_clock_fails_without_running(
    journal: Any, clock: Any, new_id: Callable[[], str]
) -> None:
    session = AgentSession(
        agent_id="agent-1", agent_version="0.1.0", capabilities=CAPABILITIES, journal=journal,
        clock=clock, new_id=new_id,
    )  # fmt: skip
    session.hello()
    # The server's clock is 10 minutes ahead of ours: its deadlines are its instants.
    server_now = clock() + timedelta(minutes=10)
    session.receive(welcome(server_now))
    late = CommandFrame(id="m1", command_id="c1", kind="syncthing.status", params={},
                        deadline=server_now - timedelta(seconds=1))  # fmt: skip
    reaction = session.receive(late)
    assert reaction.execute is None
    assert on_wire(reaction.send)[1].error.code == DEADLINE_EXCEEDED
    in_time = CommandFrame(id="m2", command_id="c2", kind="syncthing.status", params={},
                           deadline=server_now + timedelta(seconds=30))  # fmt: skip
    assert session.receive(in_time).execute == in_time
    clock.advance(31)
    assert session.receive(in_time.model_copy(update={"command_id": "c3"})).execute is None


def test_commands_interrupted_by_a_stop_are_finished_not_run_again(
    journal: Any, clock: Any, new_id: Callable[[], str]
) -> None:
    old = connect(journal, clock, new_id)
    old.receive(command(clock, "c1"))
    old.receive(command(clock, "c2", "m2"))
    old.complete("c2", Outcome.success())
    # The agent process stops and starts again.
    assert recover_interrupted(journal) == ["c1"]
    assert recover_interrupted(journal) == []
    new = connect(journal, clock, new_id)
    reaction = new.receive(command(clock, "c1", "m3"))
    assert reaction.execute is None
    _ack, result = on_wire(reaction.send)
    assert (result.ok, result.error.code) == (False, INTERRUPTED)


def test_an_error_from_the_server_is_reported_not_answered(session: AgentSession) -> None:
    error = ErrorFrame(id="e1", code=ErrorCode.UNKNOWN_COMMAND, message="m", ref="r1")
    reaction = session.receive(error)
    assert (reaction.peer_error, reaction.send, reaction.execute) == (error, (), None)


def test_a_result_too_large_for_a_frame_is_journaled_as_such(
    journal: Any, clock: Any, new_id: Callable[[], str]
) -> None:
    session = connect(journal, clock, new_id)
    session.receive(command(clock))
    huge = {"vms": ["x" * 1000] * (MAX_RESULT_DATA_BYTES // 1000)}
    result = session.complete("c1", Outcome.success(huge))
    assert result is not None
    assert (result.ok, result.data, result.error.code) == (False, None, RESULT_TOO_LARGE)
    assert len(encode_frame(result)) < 2048
    # A replay sends what the peer accepts, too.
    assert journal.get("c1").outcome.error.code == RESULT_TOO_LARGE


def test_the_servers_smaller_frame_limit_applies_to_results(
    journal: Any, clock: Any, new_id: Callable[[], str]
) -> None:
    session = AgentSession(
        agent_id="agent-1", agent_version="0.1.0", capabilities=CAPABILITIES, journal=journal,
        clock=clock, new_id=new_id,
    )  # fmt: skip
    assert session.max_frame_bytes == MAX_FRAME_BYTES
    session.hello()
    small = welcome(clock()).model_copy(
        update={"limits": Limits(max_frame_bytes=4096, max_in_flight_commands=4)}
    )
    session.receive(small)
    assert session.max_frame_bytes == 4096
    session.receive(command(clock))
    result = session.complete("c1", Outcome.success("x" * 5000))
    assert result is not None
    assert result.error is not None
    assert result.error.code == RESULT_TOO_LARGE
    session.receive(command(clock, "c2", "m2"))
    fits = session.complete("c2", Outcome.success("x" * 3000))
    assert fits is not None
    assert fits.ok


def test_long_messages_are_cut_to_what_a_frame_holds(session: AgentSession, clock: Any) -> None:
    session.receive(command(clock))
    progress = session.progress("c1", message="p" * 5000)
    assert progress is not None
    assert progress.message == "p" * 512
    failure = Outcome.failure("EXECUTOR_FAILED", "e" * 5000)
    assert failure.error is not None
    assert len(failure.error.message) == 1024
    result = session.complete("c1", failure)
    assert result is not None
    assert parse_frame(encode_frame(result)) == result


@pytest.mark.parametrize(
    "outcome",
    [
        Outcome.success({"started": datetime(2026, 12, 6)}),
        Outcome.success({"load": float("nan")}),
        Outcome(ok=True, data=None, error=Outcome.failure("X", "m").error),
        Outcome(ok=False, data=None, error=None),
    ],
)
def test_an_outcome_no_result_can_carry_is_journaled_as_invalid(
    session: AgentSession, journal: Any, clock: Any, outcome: Outcome
) -> None:
    session.receive(command(clock))
    result = session.complete("c1", outcome)
    assert result is not None
    assert result.error is not None
    assert result.error.code == INVALID_RESULT
    assert journal.get("c1").outcome.error.code == INVALID_RESULT


def test_no_progress_after_the_result(session: AgentSession, clock: Any) -> None:
    session.receive(command(clock))
    assert session.progress("c1", percent=50) is not None
    session.complete("c1", Outcome.success())
    assert session.progress("c1", percent=100) is None


def test_result_data_over_the_stores_limit_is_too_large_even_in_a_frame_that_fits(
    session: AgentSession, journal: Any, clock: Any
) -> None:
    session.receive(command(clock))
    # Compact, this fits the frame limit; as jsonb text (", " between members) it is over the data limit.
    data = [1] * (MAX_RESULT_DATA_BYTES // 3 + 1)
    assert len(json.dumps(data, separators=(",", ":"))) < MAX_FRAME_BYTES
    result = session.complete("c1", Outcome.success(data))
    assert result is not None
    assert result.error is not None
    assert result.error.code == RESULT_TOO_LARGE
    session.receive(command(clock, "c2", "m2"))
    fits = session.complete("c2", Outcome.success([1] * (MAX_RESULT_DATA_BYTES // 3 - 10)))
    assert fits is not None
    assert fits.ok
