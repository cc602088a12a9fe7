"""The WebSocket close codes of the agent tunnel and whether the agent reconnects after each.

4xxx codes are the application's own (RFC 6455 leaves 4000-4999 to applications), echoing the HTTP
statuses they resemble. The agent gives up on the codes that no retry can fix (a bad or revoked
credential, a protocol it does not speak) and reconnects with backoff after every other close.
"""

from __future__ import annotations

from enum import IntEnum


class CloseCode(IntEnum):
    NORMAL = 1000
    # The server is shutting down or restarting: reconnect (with jitter, so agents do not arrive at once).
    GOING_AWAY = 1001
    # A message above TRANSPORT_MAX_BYTES; the WebSocket layer closes before reading it.
    MESSAGE_TOO_BIG = 1009
    INTERNAL_ERROR = 1011
    # The agent broke the session beyond an `error` frame: no `hello` as first frame, a `hello` whose
    # agent_id is not the credential's, a version the server does not speak.
    PROTOCOL_VIOLATION = 4400
    BAD_CREDENTIAL = 4401
    REVOKED = 4403
    # Nothing from the agent (no hello, no heartbeat) within heartbeat_timeout_s.
    HEARTBEAT_TIMEOUT = 4408
    # The same agent connected again; the older connection is closed.
    REPLACED = 4409

    @property
    def reconnect(self) -> bool:
        """Whether the agent should connect again (after `reconnect_delay`)."""
        return self not in _FINAL


_FINAL = frozenset({CloseCode.PROTOCOL_VIOLATION, CloseCode.BAD_CREDENTIAL, CloseCode.REVOKED})


def should_reconnect(code: int) -> bool:
    """For any close code received, including ones this version does not name (reconnect on those)."""
    try:
        return CloseCode(code).reconnect
    except ValueError:
        return True
