"""The protocol agrees with the command store (supabase/migrations/*_agents.sql): the same allowlist of
kinds, and content limits such that a frame the protocol accepts is a row the store accepts."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from botmox_protocol import (
    COMMAND_KINDS,
    MAX_FRAME_BYTES,
    MAX_MESSAGE_CHARS,
    MAX_PARAMS_BYTES,
    MAX_PROGRESS_MESSAGE_CHARS,
    MAX_RESULT_DATA_BYTES,
    TRANSPORT_MAX_BYTES,
    CommandFrame,
    CommandResultFrame,
    ErrorCode,
    ProtocolError,
    encode_frame,
    parse_frame,
)
from botmox_protocol.frames import ID_PATTERN
from botmox_protocol.limits import json_text_bytes

MIGRATIONS = Path(__file__).resolve().parents[3] / "supabase" / "migrations"
SQL = "\n".join(path.read_text(encoding="utf-8") for path in sorted(MIGRATIONS.glob("*_agents.sql")))


def sql_limit(pattern: str) -> int:
    found = re.findall(pattern, SQL)
    assert found, f"no {pattern!r} in the agents migration"
    return int(found[-1])


def test_the_stores_allowlist_is_the_registrys() -> None:
    body = re.search(r"function botmox\.agent_command_kinds\(\).*?array\[(.*?)\]", SQL, re.S)
    assert body, "no botmox.agent_command_kinds() in the agents migration"
    assert set(re.findall(r"'([a-z0-9_.]+)'", body.group(1))) == COMMAND_KINDS.names()


def test_the_stores_limits_are_the_protocols() -> None:
    assert sql_limit(r"octet_length\(params::text\) <= (\d+)") == MAX_PARAMS_BYTES
    assert sql_limit(r"octet_length\(result_data::text\) <= (\d+)") == MAX_RESULT_DATA_BYTES
    assert sql_limit(r"char_length\(error_message\) <= (\d+)") >= MAX_MESSAGE_CHARS
    # The whole progress object, every character of its message escaped (\u0000), fits the store.
    worst = {"percent": 100, "message": "\x00" * MAX_PROGRESS_MESSAGE_CHARS}
    assert json_text_bytes(worst) <= sql_limit(r"octet_length\(progress::text\) <= (\d+)")
    assert "'^[A-Z][A-Z0-9_]{0,63}$'" in SQL  # result error codes, as frames.ResultCode


def test_json_text_bytes_measures_like_jsonb_text() -> None:
    # PostgreSQL: select '{"a":[1,2],"b":"é"}'::jsonb::text  ->  {"a": [1, 2], "b": "é"}
    assert json_text_bytes({"a": [1, 2], "b": "é"}) == len('{"a": [1, 2], "b": "é"}'.encode())


def test_the_largest_contents_fit_a_frame() -> None:
    data = "\x00" * (MAX_RESULT_DATA_BYTES // 6 - 1)
    assert json_text_bytes(data) <= MAX_RESULT_DATA_BYTES
    result = CommandResultFrame(id="r" * 64, command_id="c" * 64, ok=True, data=data)
    assert len(encode_frame(result).encode()) < MAX_FRAME_BYTES < TRANSPORT_MAX_BYTES


def command(params: object) -> str:
    return json.dumps({"v": 1, "type": "command", "id": "m1", "command_id": "c1", "kind": "test.any",
                       "params": params, "deadline": "2026-12-06T08:05:00Z"})  # fmt: skip


@pytest.mark.parametrize(
    ("text", "ok"),
    [
        (json.dumps({"v": 1, "type": "command.result", "id": "r1", "command_id": "c1", "ok": True,
                     "data": "x" * (MAX_RESULT_DATA_BYTES - 2), "error": None}), True),
        (json.dumps({"v": 1, "type": "command.result", "id": "r1", "command_id": "c1", "ok": True,
                     "data": "x" * (MAX_RESULT_DATA_BYTES - 1), "error": None}), False),
        (json.dumps({"v": 1, "type": "command.progress", "id": "p1", "command_id": "c1", "percent": None,
                     "message": "m" * MAX_PROGRESS_MESSAGE_CHARS}), True),
        (json.dumps({"v": 1, "type": "command.progress", "id": "p1", "command_id": "c1", "percent": None,
                     "message": "m" * (MAX_PROGRESS_MESSAGE_CHARS + 1)}), False),
    ],
)  # fmt: skip
def test_content_over_its_limit_is_an_invalid_frame(text: str, ok: bool) -> None:
    if ok:
        assert parse_frame(text)
        return
    with pytest.raises(ProtocolError) as caught:
        parse_frame(text)
    assert caught.value.code is ErrorCode.INVALID_FRAME


def test_params_over_their_limit_are_an_invalid_frame() -> None:
    at_limit = {"p": "x" * (MAX_PARAMS_BYTES - len('{"p": ""}'))}
    assert json_text_bytes(at_limit) == MAX_PARAMS_BYTES
    frame = CommandFrame.model_validate_json(command(at_limit))
    assert frame.params == at_limit
    with pytest.raises(ValueError, match="params over"):
        CommandFrame.model_validate_json(command({"p": at_limit["p"] + "x"}))
    with pytest.raises(ProtocolError) as caught:
        parse_frame(command({"p": at_limit["p"] + "x"}))
    assert caught.value.code is ErrorCode.INVALID_FRAME


def test_identifiers_fit_the_stores_uuids() -> None:
    assert re.fullmatch(ID_PATTERN, "3d4e5f6a-7b8c-4d9e-8f0a-1b2c3d4e5f60")
