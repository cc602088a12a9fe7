"""parse_frame and encode_frame: round trips, and every way a message is refused, each with its code."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, ConfigDict

from botmox_protocol import (
    COMMAND_KINDS,
    FRAME_MODELS,
    MAX_FRAME_BYTES,
    CommandAckFrame,
    CommandError,
    CommandFrame,
    CommandKind,
    CommandProgressFrame,
    CommandResultFrame,
    ErrorCode,
    ErrorFrame,
    HeartbeatFrame,
    HelloFrame,
    Limits,
    ProtocolError,
    WelcomeFrame,
    encode_frame,
    parse_frame,
)
from botmox_protocol.frames import ID_PATTERN


class AnyParams(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True)


# A registry that takes any params, so round trips can draw arbitrary JSON for them.
ANY_KIND = "test.anything"
OPEN_REGISTRY = COMMAND_KINDS.with_kinds(CommandKind(ANY_KIND, AnyParams, "any params", mutating=False))

ids = st.from_regex(ID_PATTERN, fullmatch=True)
kind_names = st.from_regex(r"^[a-z][a-z0-9_]{0,10}(\.[a-z][a-z0-9_]{0,10}){1,3}$", fullmatch=True)
texts = st.text(max_size=200)
offsets = st.sampled_from([UTC, timezone(timedelta(hours=2)), timezone(timedelta(hours=-5, minutes=-30))])
# Every instant that stays within datetime's range in UTC (the extremes are refused: see below).
instants = st.datetimes(min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30), timezones=offsets)
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63)
    | st.floats(allow_nan=False, allow_infinity=False)
    | texts,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(texts, inner, max_size=4),
    max_leaves=20,
)
json_objects = st.dictionaries(texts, json_values, max_size=5)
result_codes = st.from_regex(r"^[A-Z][A-Z0-9_]{0,20}$", fullmatch=True)

frames = st.one_of(
    st.builds(
        HelloFrame,
        id=ids,
        agent_id=ids,
        agent_version=st.from_regex(r"^[0-9A-Za-z][0-9A-Za-z.+-]{0,20}$", fullmatch=True),
        capabilities=st.lists(kind_names, unique=True, max_size=8).map(tuple),
    ),
    st.builds(
        WelcomeFrame,
        id=ids,
        protocol_version=st.just(1),
        server_time=instants,
        heartbeat_interval_s=st.integers(1, 60),
        heartbeat_timeout_s=st.integers(61, 7200),
        limits=st.builds(
            Limits, max_frame_bytes=st.integers(1024, 2**30), max_in_flight_commands=st.integers(1, 10_000)
        ),
    ),
    st.builds(HeartbeatFrame, id=ids),
    st.builds(
        CommandFrame, id=ids, command_id=ids, kind=st.just(ANY_KIND), params=json_objects, deadline=instants
    ),
    st.builds(CommandAckFrame, id=ids, command_id=ids),
    st.builds(
        CommandProgressFrame,
        id=ids,
        command_id=ids,
        percent=st.none() | st.integers(0, 100),
        message=st.none() | texts,
    ),
    st.builds(CommandResultFrame, id=ids, command_id=ids, ok=st.just(True), data=json_values),
    st.builds(
        CommandResultFrame,
        id=ids,
        command_id=ids,
        ok=st.just(False),
        error=st.builds(CommandError, code=result_codes, message=texts),
    ),
    st.builds(ErrorFrame, id=ids, code=st.sampled_from(ErrorCode), message=texts, ref=st.none() | ids),
)


@settings(max_examples=300)
@given(frames)
def test_a_frame_survives_encode_then_parse(frame: object) -> None:
    assert isinstance(frame, BaseModel)
    text = encode_frame(frame)  # type: ignore[arg-type]
    assert parse_frame(text, registry=OPEN_REGISTRY) == frame
    assert parse_frame(text.encode(), registry=OPEN_REGISTRY) == frame
    # Canonical: encoding the parsed frame gives the same text again.
    assert encode_frame(parse_frame(text, registry=OPEN_REGISTRY)) == text


@given(frames)
def test_every_encoded_frame_carries_the_whole_envelope(frame: object) -> None:
    obj = json.loads(encode_frame(frame))  # type: ignore[arg-type]
    assert obj["v"] == 1
    assert obj["type"] in FRAME_MODELS
    assert set(obj) == set(FRAME_MODELS[obj["type"]].model_fields)


@settings(max_examples=300)
@given(st.text(max_size=300) | st.binary(max_size=300))
def test_arbitrary_input_is_a_frame_or_a_protocol_error(data: str | bytes) -> None:
    outcome: object
    try:
        outcome = parse_frame(data)
    except ProtocolError as error:
        outcome = error
    assert isinstance(outcome, ProtocolError | BaseModel)


@settings(max_examples=300)
@given(
    st.dictionaries(
        st.sampled_from(["v", "type", "id", "command_id", "kind", "params", "deadline", "ok", "data"])
        | texts,
        json_values,
        max_size=8,
    )
)
def test_arbitrary_objects_are_a_frame_or_a_protocol_error(obj: dict[str, object]) -> None:
    outcome: object
    try:
        outcome = parse_frame(json.dumps(obj))
    except ProtocolError as error:
        outcome = error
    assert isinstance(outcome, ProtocolError | BaseModel)


@settings(max_examples=300)
@given(frames, st.data())
def test_a_valid_frame_with_one_member_replaced_is_a_frame_or_a_protocol_error(
    frame: object, data: st.DataObject
) -> None:
    obj = json.loads(encode_frame(frame))  # type: ignore[arg-type]
    key = data.draw(st.sampled_from(sorted(obj)))
    obj[key] = data.draw(json_values | st.datetimes(timezones=offsets).map(datetime.isoformat))
    outcome: object
    try:
        outcome = parse_frame(json.dumps(obj), registry=OPEN_REGISTRY)
    except ProtocolError as error:
        outcome = error
    assert isinstance(outcome, ProtocolError | BaseModel)


def heartbeat(**changes: object) -> str:
    return json.dumps({"v": 1, "type": "heartbeat", "id": "h1"} | changes)


def command(**changes: object) -> str:
    obj = {
        "v": 1,
        "type": "command",
        "id": "m1",
        "command_id": "c1",
        "kind": "proxmox.vm.start",
        "params": {"credential": "secret://proxmox/pve1", "node": "pve1", "vmid": 101},
        "deadline": "2026-12-06T08:05:00Z",
    }
    return json.dumps(obj | changes)


def refused(data: str | bytes, **kwargs: int) -> ProtocolError:
    with pytest.raises(ProtocolError) as caught:
        parse_frame(data, **kwargs)  # type: ignore[arg-type]
    return caught.value


@pytest.mark.parametrize(
    ("data", "code", "ref"),
    [
        ("{", ErrorCode.INVALID_JSON, None),
        ("", ErrorCode.INVALID_JSON, None),
        (b"\xff\xfe{}", ErrorCode.INVALID_JSON, None),
        ('{"v": 1, "v": 1, "type": "heartbeat", "id": "h1"}', ErrorCode.INVALID_JSON, None),
        ('{"v": 1, "type": "heartbeat", "id": "h1", "x": NaN}', ErrorCode.INVALID_JSON, None),
        ("[" * 100_000, ErrorCode.INVALID_JSON, None),
        ('{"v": 1, "type": "command.result", "id": "r1", "command_id": "c1", "ok": true, "data": 1e400, '
         '"error": null}', ErrorCode.INVALID_FRAME, "r1"),
        ("1" * 5000, ErrorCode.INVALID_JSON, None),
        ("[]", ErrorCode.INVALID_FRAME, None),
        ('"heartbeat"', ErrorCode.INVALID_FRAME, None),
        ("null", ErrorCode.INVALID_FRAME, None),
        ('{"type": "heartbeat", "id": "h1"}', ErrorCode.INVALID_FRAME, "h1"),
        (heartbeat(v="1"), ErrorCode.INVALID_FRAME, "h1"),
        (heartbeat(v=True), ErrorCode.INVALID_FRAME, "h1"),
        (heartbeat(v=1.0), ErrorCode.INVALID_FRAME, "h1"),
        (heartbeat(v=2), ErrorCode.UNSUPPORTED_VERSION, "h1"),
        (heartbeat(v=0), ErrorCode.UNSUPPORTED_VERSION, "h1"),
        ('{"v": 1, "id": "h1"}', ErrorCode.INVALID_FRAME, "h1"),
        (heartbeat(type=7), ErrorCode.INVALID_FRAME, "h1"),
        (heartbeat(type="ping"), ErrorCode.UNKNOWN_TYPE, "h1"),
        (heartbeat(type="Heartbeat"), ErrorCode.UNKNOWN_TYPE, "h1"),
        ('{"v": 1, "type": "heartbeat"}', ErrorCode.INVALID_FRAME, None),
        (heartbeat(id=""), ErrorCode.INVALID_FRAME, None),
        (heartbeat(id="has space"), ErrorCode.INVALID_FRAME, None),
        (heartbeat(id=12), ErrorCode.INVALID_FRAME, None),
        (heartbeat(extra=1), ErrorCode.INVALID_FRAME, "h1"),
        (command(command_id=5), ErrorCode.INVALID_FRAME, "m1"),
        (command(deadline=1_700_000_000), ErrorCode.INVALID_FRAME, "m1"),
        (command(deadline="2026-12-06T08:05:00"), ErrorCode.INVALID_FRAME, "m1"),
        (command(deadline="tomorrow"), ErrorCode.INVALID_FRAME, "m1"),
        (command(deadline="9999-12-31T23:00:00-05:00"), ErrorCode.INVALID_FRAME, "m1"),
        (command(deadline="0001-01-01T00:00:00+05:00"), ErrorCode.INVALID_FRAME, "m1"),
        (command(deadline="2026-02-30T00:00:00Z"), ErrorCode.INVALID_FRAME, "m1"),
        (command(params=[]), ErrorCode.INVALID_FRAME, "m1"),
        (command(kind="Proxmox.VM"), ErrorCode.INVALID_FRAME, "m1"),
        (command(kind="shell.exec"), ErrorCode.UNKNOWN_COMMAND_KIND, "m1"),
        (command(params={"node": "pve1", "vmid": 101}), ErrorCode.INVALID_PARAMS, "m1"),
        (command(params={"credential": "secret://proxmox/pve1", "node": "pve1", "vmid": "101"}),
         ErrorCode.INVALID_PARAMS, "m1"),
        (command(params={"credential": "secret://proxmox/pve1", "node": "pve1", "vmid": 101, "x": 1}),
         ErrorCode.INVALID_PARAMS, "m1"),
    ],
)  # fmt: skip
def test_each_bad_message_is_refused_with_its_code_and_the_frame_it_names(
    data: str | bytes, code: ErrorCode, ref: str | None
) -> None:
    error = refused(data)
    assert error.code is code
    assert error.ref == ref
    assert error.message.startswith(type(error).summary)


def test_missing_fields_are_refused_even_where_the_model_has_a_default() -> None:
    # Defaults exist for building frames in code; on the wire every field is present.
    for field in ("percent", "message"):
        obj = {
            "v": 1,
            "type": "command.progress",
            "id": "p1",
            "command_id": "c1",
            "percent": 5,
            "message": None,
        }
        del obj[field]
        error = refused(json.dumps(obj))
        assert error.code is ErrorCode.INVALID_FRAME
        assert field in error.message


@pytest.mark.parametrize(
    "body",
    [
        {"ok": True, "data": None, "error": {"code": "X", "message": "m"}},
        {"ok": False, "data": None, "error": None},
        {"ok": False, "data": {"partial": 1}, "error": {"code": "X", "message": "m"}},
        {"ok": 1, "data": None, "error": None},
        {"ok": False, "data": None, "error": {"code": "lower", "message": "m"}},
    ],
)
def test_a_result_is_either_ok_with_data_or_failed_with_an_error(body: dict[str, object]) -> None:
    frame = {"v": 1, "type": "command.result", "id": "r1", "command_id": "c1"} | body
    assert refused(json.dumps(frame)).code is ErrorCode.INVALID_FRAME


def test_hello_capabilities_are_kind_names_without_repeats() -> None:
    hello = {"v": 1, "type": "hello", "id": "h1", "agent_id": "a1", "agent_version": "0.1.0"}
    assert refused(json.dumps(hello | {"capabilities": ["a.b", "a.b"]})).code is ErrorCode.INVALID_FRAME
    assert refused(json.dumps(hello | {"capabilities": ["rm -rf"]})).code is ErrorCode.INVALID_FRAME
    assert parse_frame(json.dumps(hello | {"capabilities": ["a.b"]}))


def test_welcome_timeout_exceeds_the_heartbeat_interval() -> None:
    welcome = {
        "v": 1, "type": "welcome", "id": "w1", "protocol_version": 1, "server_time": "2026-12-06T08:00:00Z",
        "heartbeat_interval_s": 30, "heartbeat_timeout_s": 30,
        "limits": {"max_frame_bytes": 524288, "max_in_flight_commands": 32},
    }  # fmt: skip
    assert refused(json.dumps(welcome)).code is ErrorCode.INVALID_FRAME
    assert parse_frame(json.dumps(welcome | {"heartbeat_timeout_s": 31}))


def test_timestamps_are_normalised_to_utc() -> None:
    frame = parse_frame(command(deadline="2026-12-06T10:05:00+02:00"))
    assert isinstance(frame, CommandFrame)
    assert frame.deadline == datetime(2026, 12, 6, 8, 5, tzinfo=UTC)
    assert frame.deadline.tzinfo is UTC
    assert '"deadline":"2026-12-06T08:05:00Z"' in encode_frame(frame)


def padded_heartbeat(size: int) -> str:
    base = heartbeat()
    return base + " " * (size - len(base))


def test_the_size_limit_is_in_utf8_bytes_and_checked_before_parsing() -> None:
    assert parse_frame(padded_heartbeat(MAX_FRAME_BYTES))
    assert refused(padded_heartbeat(MAX_FRAME_BYTES + 1)).code is ErrorCode.FRAME_TOO_LARGE
    assert refused(padded_heartbeat(MAX_FRAME_BYTES + 1).encode()).code is ErrorCode.FRAME_TOO_LARGE
    # Within the limit in characters, over it in bytes (three bytes each).
    wide = heartbeat() + "\u20ac" * (MAX_FRAME_BYTES // 3 + 1)
    assert len(wide) < MAX_FRAME_BYTES
    assert refused(wide).code is ErrorCode.FRAME_TOO_LARGE
    # Not even JSON: still refused for its size, not its content.
    assert refused("{" * (MAX_FRAME_BYTES + 1)).code is ErrorCode.FRAME_TOO_LARGE
    assert refused(padded_heartbeat(2048), max_bytes=1024).code is ErrorCode.FRAME_TOO_LARGE


def test_a_number_json_cannot_hold_is_refused_when_the_frame_is_built() -> None:
    with pytest.raises(ValueError, match="finite"):
        CommandResultFrame(id="r1", command_id="c1", ok=True, data={"load": float("inf")})


def test_encode_refuses_a_frame_the_peer_would_refuse() -> None:
    # The content limits keep a frame within MAX_FRAME_BYTES; a peer that announced less is the case.
    frame = CommandResultFrame(id="r1", command_id="c1", ok=True, data="x" * 5000)
    with pytest.raises(ProtocolError) as caught:
        encode_frame(frame, max_bytes=4096)
    assert caught.value.code is ErrorCode.FRAME_TOO_LARGE
    assert caught.value.ref == "r1"
    small = CommandResultFrame(id="r1", command_id="c1", ok=True, data="x" * 1000)
    assert parse_frame(encode_frame(small)) == small


def test_error_messages_never_echo_the_refused_values() -> None:
    secret = "s3cr3t-VALUE-that-must-not-leak"
    cases = [
        command(params={"credential": secret, "node": "pve1", "vmid": 101}),
        command(params={"credential": "secret://proxmox/pve1", "node": secret + "_", "vmid": 101}),
        command(kind="s3cr3t.value.that.must.not.leak"),
        command(deadline=secret),
        command(command_id=secret + " "),
        heartbeat(v=secret),
        heartbeat(type=secret + "x" * 100),
        '{"v": 1, "type": "heartbeat", "id": "h1", "x": "' + secret + '"',
    ]
    for data in cases:
        error = refused(data)
        assert secret.lower() not in error.message.lower().replace(".", "-")
        assert secret not in encode_frame(error.to_frame("e1"))
