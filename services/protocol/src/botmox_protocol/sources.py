"""The default sources of frame ids and of the time, injected into the sessions (tests pass their own)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime


def new_frame_id() -> str:
    return uuid.uuid4().hex


def utc_now() -> datetime:
    return datetime.now(UTC)
