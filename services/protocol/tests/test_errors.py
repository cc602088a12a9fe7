"""Error codes: one exception per code, and the `error` frame carries a code across unchanged."""

from __future__ import annotations

import pytest

from botmox_protocol import (
    ERRORS_BY_CODE,
    ErrorCode,
    ErrorFrame,
    ProtocolError,
    encode_frame,
    error_from_frame,
    parse_frame,
)
from botmox_protocol.limits import MAX_MESSAGE_CHARS


def test_every_code_has_exactly_one_exception() -> None:
    assert set(ERRORS_BY_CODE) == set(ErrorCode)
    classes = list(ERRORS_BY_CODE.values())
    assert len(set(classes)) == len(classes)
    assert {cls.code for cls in ProtocolError.__subclasses__()} == set(ErrorCode)
    assert len(ProtocolError.__subclasses__()) == len(ErrorCode)


@pytest.mark.parametrize("code", list(ErrorCode))
def test_an_error_crosses_the_wire_with_its_code_message_and_ref(code: ErrorCode) -> None:
    error = ERRORS_BY_CODE[code]("what went wrong", ref="m1")
    frame = parse_frame(encode_frame(error.to_frame("e1")))
    assert isinstance(frame, ErrorFrame)
    assert (frame.id, frame.code, frame.ref) == ("e1", code, "m1")
    received = error_from_frame(frame)
    assert type(received) is type(error)
    assert (received.code, received.message, received.ref) == (code, error.message, "m1")
    assert str(received) == error.message


def test_a_message_is_capped_to_what_an_error_frame_holds() -> None:
    error = ERRORS_BY_CODE[ErrorCode.INVALID_FRAME]("x" * 5000)
    assert len(error.message) == MAX_MESSAGE_CHARS
    assert parse_frame(encode_frame(error.to_frame("e1")))


def test_an_unknown_code_from_a_peer_is_an_invalid_frame() -> None:
    text = '{"v": 1, "type": "error", "id": "e1", "code": "NEW_IN_V2", "message": "m", "ref": null}'
    with pytest.raises(ProtocolError) as caught:
        parse_frame(text)
    assert caught.value.code is ErrorCode.INVALID_FRAME
