"""The exit codes of ``pair``, ``run`` and ``status`` (services/agent/README.md). The vault's commands
keep their own (``vault/_cli.py``). A service manager restarts on any code except the final ones
(``FINAL``: a restart cannot fix them)."""

from __future__ import annotations

from typing import Final

from botmox_protocol import CloseCode

OK: Final = 0
UNEXPECTED: Final = 1
USAGE: Final = 2
NOT_CONNECTED: Final = 3
NOT_PAIRED: Final = 10
ALREADY_PAIRED: Final = 11
CODE_REFUSED: Final = 12
SERVER_UNREACHABLE: Final = 13
SERVER_REFUSED: Final = 14
VAULT_PROBLEM: Final = 15
STATE_PROBLEM: Final = 16
CREDENTIAL_REFUSED: Final = 20
REVOKED: Final = 21
PROTOCOL_VIOLATION: Final = 22

BY_CLOSE_CODE: Final[dict[int, int]] = {
    CloseCode.BAD_CREDENTIAL: CREDENTIAL_REFUSED,
    CloseCode.REVOKED: REVOKED,
    CloseCode.PROTOCOL_VIOLATION: PROTOCOL_VIOLATION,
}
FINAL: Final = frozenset({USAGE, NOT_PAIRED, CREDENTIAL_REFUSED, REVOKED, PROTOCOL_VIOLATION})
