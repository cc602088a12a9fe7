"""docs/agent-protocol.md cannot drift from the code: every ```json block is a frame that parses and
encodes back to the same JSON, and every frame type, command kind, error code and close code is there."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from botmox_protocol import (
    COMMAND_KINDS,
    FRAME_MODELS,
    MAX_FRAME_BYTES,
    MAX_MESSAGE_CHARS,
    MAX_PARAMS_BYTES,
    MAX_PROGRESS_MESSAGE_CHARS,
    MAX_RESULT_DATA_BYTES,
    TRANSPORT_MAX_BYTES,
    CloseCode,
    CommandFrame,
    CommandResultFrame,
    ErrorCode,
    encode_frame,
    parse_frame,
)
from botmox_protocol.journal import (
    DEADLINE_EXCEEDED,
    INTERRUPTED,
    INVALID_RESULT,
    RESULT_TOO_LARGE,
    UNSUPPORTED_KIND,
)

DOC = Path(__file__).resolve().parents[3] / "docs" / "agent-protocol.md"
TEXT = DOC.read_text(encoding="utf-8")
EXAMPLES = re.findall(r"^```json\n(.*?)^```$", TEXT, flags=re.MULTILINE | re.DOTALL)


def test_the_doc_has_examples() -> None:
    assert len(EXAMPLES) >= len(FRAME_MODELS)


@pytest.mark.parametrize("example", EXAMPLES, ids=[f"example-{n}" for n in range(1, len(EXAMPLES) + 1)])
def test_every_example_parses_and_encodes_back_to_itself(example: str) -> None:
    frame = parse_frame(example)
    written, shown = json.loads(encode_frame(frame)), json.loads(example)
    assert written == shown
    assert list(written) == list(shown)  # the members in the order the codec writes them
    assert parse_frame(encode_frame(frame)) == frame


def test_every_frame_type_has_an_example() -> None:
    types = {parse_frame(example).type for example in EXAMPLES}
    assert types == set(FRAME_MODELS)


def test_every_command_kind_has_an_example_and_a_row() -> None:
    commands = [frame for frame in map(parse_frame, EXAMPLES) if isinstance(frame, CommandFrame)]
    assert {frame.kind for frame in commands} == COMMAND_KINDS.names()
    for kind in COMMAND_KINDS:
        assert re.search(
            rf"^\| `{re.escape(kind.name)}` \|.*\| {'yes' if kind.mutating else 'no'} \|$", TEXT, re.M
        )


def test_both_outcomes_of_a_result_have_an_example() -> None:
    results = [frame for frame in map(parse_frame, EXAMPLES) if isinstance(frame, CommandResultFrame)]
    assert {frame.ok for frame in results} == {True, False}


def test_every_error_code_has_a_row() -> None:
    for code in ErrorCode:
        assert re.search(rf"^\| `{code}` \|", TEXT, re.M), code
    for code in (INTERRUPTED, DEADLINE_EXCEEDED, UNSUPPORTED_KIND, RESULT_TOO_LARGE, INVALID_RESULT):
        assert re.search(rf"^\| `{code}` \|", TEXT, re.M), code


def test_every_close_code_has_a_row_with_its_reconnect_rule() -> None:
    rows = re.findall(r"^\| (\d{4}) \| `(\w+)` \|.*\| (yes|no) \|$", TEXT, re.M)
    assert {(int(number), name, rule == "yes") for number, name, rule in rows} == {
        (code.value, code.name, code.reconnect) for code in CloseCode
    }


def test_the_limits_are_the_codes() -> None:
    rows = dict(re.findall(r"^\| `(MAX_\w+|TRANSPORT_MAX_BYTES)` \| ([\d,]+) ", TEXT, re.M))
    assert {name: int(value.replace(",", "")) for name, value in rows.items()} == {
        "MAX_FRAME_BYTES": MAX_FRAME_BYTES,
        "TRANSPORT_MAX_BYTES": TRANSPORT_MAX_BYTES,
        "MAX_PARAMS_BYTES": MAX_PARAMS_BYTES,
        "MAX_RESULT_DATA_BYTES": MAX_RESULT_DATA_BYTES,
        "MAX_MESSAGE_CHARS": MAX_MESSAGE_CHARS,
        "MAX_PROGRESS_MESSAGE_CHARS": MAX_PROGRESS_MESSAGE_CHARS,
    }
