"""Close codes: their numbers, and whether the agent reconnects after each."""

from __future__ import annotations

from botmox_protocol import CloseCode, should_reconnect


def test_the_codes_and_their_numbers() -> None:
    assert {code.name: code.value for code in CloseCode} == {
        "NORMAL": 1000,
        "GOING_AWAY": 1001,
        "MESSAGE_TOO_BIG": 1009,
        "INTERNAL_ERROR": 1011,
        "PROTOCOL_VIOLATION": 4400,
        "BAD_CREDENTIAL": 4401,
        "REVOKED": 4403,
        "HEARTBEAT_TIMEOUT": 4408,
        "REPLACED": 4409,
    }


def test_the_agent_gives_up_only_where_a_retry_cannot_help() -> None:
    final = {code for code in CloseCode if not code.reconnect}
    assert final == {CloseCode.PROTOCOL_VIOLATION, CloseCode.BAD_CREDENTIAL, CloseCode.REVOKED}
    assert should_reconnect(4409)
    assert should_reconnect(1006)  # abnormal closure: no close frame at all
    assert should_reconnect(4999)  # a code of a later version
    assert not should_reconnect(4403)
