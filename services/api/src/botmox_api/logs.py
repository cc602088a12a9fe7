"""Structured logging with structlog: JSON or console lines, each carrying the correlation id.

The logger is built per application (no global ``structlog.configure``), writes to the given
stream, and merges context variables so every line of a request carries its ``correlation_id``.
A last processor redacts anything that looks like a credential, so a careless call cannot leak a
token, key or secret.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Mapping
from typing import Any, Final, TextIO

import structlog
from structlog.typing import EventDict, Processor

_SENSITIVE_KEY: Final = re.compile(
    r"(authorization|token|secret|password|passwd|api[_-]?key|cookie|dsn|db_url)", re.IGNORECASE
)
_BEARER: Final = re.compile(r"(?i)\bbearer\s+[^\s\"',;]+")
_JWT: Final = re.compile(r"\beyJ[\w-]{5,}\.[\w-]*\.[\w-]*")
_URL_PASSWORD: Final = re.compile(r"(//[^/:@\s]+:)[^@\s/]+@")
REDACTED: Final = "[redacted]"


def _scrub(value: str) -> str:
    value = _BEARER.sub("Bearer " + REDACTED, value)
    value = _JWT.sub(REDACTED, value)
    return _URL_PASSWORD.sub(r"\1" + REDACTED + "@", value)


def redact_secrets(_logger: Any, _method: str, event_dict: EventDict) -> EventDict:
    for key, value in list(event_dict.items()):
        if _SENSITIVE_KEY.search(key):
            event_dict[key] = REDACTED
        elif isinstance(value, str):
            event_dict[key] = _scrub(value)
    return event_dict


def build_logger(
    *, level: str = "INFO", fmt: str = "json", stream: TextIO | None = None
) -> structlog.typing.FilteringBoundLogger:
    renderer: Processor = (
        structlog.processors.JSONRenderer() if fmt == "json" else structlog.dev.ConsoleRenderer(colors=False)
    )
    processors: list[Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.format_exc_info,
        redact_secrets,
        renderer,
    ]
    logger: structlog.typing.FilteringBoundLogger = structlog.wrap_logger(
        structlog.PrintLogger(stream or sys.stdout),
        processors=processors,
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelNamesMapping()[level]),
        cache_logger_on_first_use=True,
    )
    return logger


def bind_request(correlation_id: str) -> Mapping[str, Any]:
    """Bind the request's id for every log line of this task; returns the tokens to reset."""
    return structlog.contextvars.bind_contextvars(correlation_id=correlation_id)


def unbind_request(tokens: Mapping[str, Any]) -> None:
    structlog.contextvars.reset_contextvars(**tokens)
