"""Structured logging with structlog: JSON or console lines, each carrying the request's correlation id.

The correlation id is echoed from ``x-correlation-id`` when it is safe to, else a fresh UUID; the
request gate binds it for every line of the request (``bind_request``) and returns it in the answer.

The logger is built per application (no global ``structlog.configure``), writes to the given
stream, and merges context variables so every line of a request carries its ``correlation_id``.
A last processor redacts anything that looks like a credential, so a careless call cannot leak a
token, key, secret or DSN password.

Libraries log through the standard library (psycopg's pool logs each failed connection attempt
with libpq's message, which can quote the whole DSN). ``route_stdlib_logging`` sends those records
through the same processors, redaction included; the server entry point installs it once per process.
"""

from __future__ import annotations

import logging
import re
import sys
import uuid
from collections.abc import Mapping
from typing import Any, Final, TextIO

import structlog
from structlog.typing import EventDict, Processor

_SENSITIVE_KEY: Final = re.compile(
    r"(authorization|token|secret|password|passwd|api[_-]?key|cookie|dsn|db_url)", re.IGNORECASE
)
_BEARER: Final = re.compile(r"(?i)\bbearer\s+[^\s\"',;]+")
_JWT: Final = re.compile(r"\beyJ[\w-]{5,}\.[\w-]*\.[\w-]*")
_URL_PASSWORD: Final = re.compile(r"(//[^/:@\s]*:)[^@\s/]+@")
# libpq key=value DSNs and URI query parameters: password=... (quoted or bare).
_KEYWORD_PASSWORD: Final = re.compile(r"(?i)(password|passwd|pwd)(\s*=\s*)('(?:[^'\\]|\\.)*'|[^\s&'\"]+)")
REDACTED: Final = "[redacted]"

CORRELATION_HEADER: Final = "x-correlation-id"
CORRELATION_HEADER_BYTES: Final = CORRELATION_HEADER.encode()
# An id we echo must be safe to put in a header and a log line: printable, bounded.
_SAFE_CORRELATION_ID: Final = re.compile(r"^[\x21-\x7e]{1,128}$")


def correlation_id(received: str | None) -> str:
    """The id a request is known by: the one it sent, when safe, else a fresh UUID."""
    if received is not None and _SAFE_CORRELATION_ID.match(received):
        return received
    return str(uuid.uuid4())


def _scrub(value: str) -> str:
    value = _BEARER.sub("Bearer " + REDACTED, value)
    value = _JWT.sub(REDACTED, value)
    value = _KEYWORD_PASSWORD.sub(r"\1\2" + REDACTED, value)
    return _URL_PASSWORD.sub(r"\1" + REDACTED + "@", value)


def redact_secrets(_logger: Any, _method: str, event_dict: EventDict) -> EventDict:
    for key, value in list(event_dict.items()):
        if _SENSITIVE_KEY.search(key):
            event_dict[key] = REDACTED
        elif isinstance(value, str):
            event_dict[key] = _scrub(value)
    return event_dict


def _renderer(fmt: str) -> Processor:
    return (
        structlog.processors.JSONRenderer() if fmt == "json" else structlog.dev.ConsoleRenderer(colors=False)
    )


# What every line gets before rendering, whether it came from structlog or the standard library.
_ENRICH: Final[tuple[Processor, ...]] = (
    structlog.contextvars.merge_contextvars,
    structlog.processors.add_log_level,
    structlog.processors.TimeStamper(fmt="iso", utc=True),
)


def build_logger(
    *, level: str = "INFO", fmt: str = "json", stream: TextIO | None = None
) -> structlog.typing.FilteringBoundLogger:
    processors: list[Processor] = [
        *_ENRICH,
        structlog.processors.format_exc_info,
        redact_secrets,
        _renderer(fmt),
    ]
    logger: structlog.typing.FilteringBoundLogger = structlog.wrap_logger(
        structlog.PrintLogger(stream or sys.stdout),
        processors=processors,
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelNamesMapping()[level]),
        cache_logger_on_first_use=True,
    )
    return logger


def route_stdlib_logging(*, level: str = "INFO", fmt: str = "json", stream: TextIO | None = None) -> None:
    """Send every standard-library record (the root logger's) through the same processors as
    ``build_logger``: same format, correlation id, redaction. Process-wide, so only for the server."""
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[*_ENRICH, structlog.stdlib.add_logger_name],
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.format_exc_info,
            redact_secrets,
            _renderer(fmt),
        ],
    )
    threshold = logging.getLevelNamesMapping()[level]
    handler = logging.StreamHandler(stream or sys.stdout)
    handler.setFormatter(formatter)
    handler.setLevel(threshold)
    root = logging.getLogger()
    root.handlers = [handler]
    # Libraries' chatter (httpx logs every request at INFO) stays out unless it is a warning; loggers
    # with a level of their own (uvicorn's, set from LOG_LEVEL) keep it.
    root.setLevel(max(threshold, logging.WARNING))


def bind_request(correlation_id: str) -> Mapping[str, Any]:
    """Bind the request's id for every log line of this task; returns the tokens to reset."""
    return structlog.contextvars.bind_contextvars(correlation_id=correlation_id)


def unbind_request(tokens: Mapping[str, Any]) -> None:
    structlog.contextvars.reset_contextvars(**tokens)
