"""The correlation id: echoed from ``x-correlation-id``, or a fresh UUID."""

from __future__ import annotations

import re
import uuid
from typing import Final

HEADER: Final = "x-correlation-id"
HEADER_BYTES: Final = HEADER.encode()
# An id we echo must be safe to put in a header and a log line: printable, bounded.
_SAFE: Final = re.compile(r"^[\x21-\x7e]{1,128}$")


def correlation_id(received: str | None) -> str:
    if received is not None and _SAFE.match(received):
        return received
    return str(uuid.uuid4())
