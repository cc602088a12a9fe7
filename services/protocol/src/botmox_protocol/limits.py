"""Every size limit of the protocol, and how a JSON value's size is measured against them.

The command store (docs/contracts/agents-sql.md) checks the same sizes in PostgreSQL: params, progress
and result data as the octets of `jsonb::text`; services/protocol/tests/test_command_store.py pins the
two together, so a frame the protocol accepts is one the store accepts.
"""

from __future__ import annotations

import json
from typing import Final

# A frame's largest encoded size (UTF-8 bytes). Larger ones get an `error` frame FRAME_TOO_LARGE and the
# connection stays; the WebSocket layer closes with 1009 above TRANSPORT_MAX_BYTES before any parsing.
MAX_FRAME_BYTES: Final = 512 * 1024
TRANSPORT_MAX_BYTES: Final = 1024 * 1024

# A command's params and a result's data, as PostgreSQL prints them (agent_commands' checks).
MAX_PARAMS_BYTES: Final = 16 * 1024
MAX_RESULT_DATA_BYTES: Final = 256 * 1024

# Messages, in characters. A progress message stays far enough below the store's 4 KiB for the whole
# progress object even when every character is escaped (\u0000: six bytes).
MAX_MESSAGE_CHARS: Final = 1024
MAX_PROGRESS_MESSAGE_CHARS: Final = 512


def json_text_bytes(value: object) -> int:
    """The size of a JSON value as PostgreSQL's `jsonb::text` writes it: `", "` and `": "` between
    members, UTF-8 unescaped. (PostgreSQL writes numbers without exponents, so `1e300` is longer there;
    such a number in a result is the executor's rare case, refused by the store if it tips the limit.)"""
    return len(json.dumps(value, ensure_ascii=False, separators=(", ", ": ")).encode())
