"""Structured logging with structlog: JSON or console lines, each carrying the request's correlation id.

The correlation id is echoed from ``x-correlation-id`` when it is safe to, else a fresh UUID; the
request gate binds it for every line of the request (``bind_request``) and returns it in the answer.
It lives in one context variable of its own, which a processor adds to every line: setting it costs
a fraction of a microsecond per request, and nothing is merged unless a line is written.

The logger is built per application (no global ``structlog.configure``), writes to the given
stream, and merges context variables so every line of a request carries its ``correlation_id``.
A last processor redacts anything that looks like a credential, so a careless call cannot leak a
token, key, secret or DSN password.

The access line, one per request, is the only line on the hot path, so ``AccessLog`` renders it
directly in JSON: the same keys in the same order and the same values as the processor chain would
give, with redaction applied to the fields that carry what the client sent (method, path,
correlation id); the other fields are the gate's own numbers and constants. In the console format
(development) it goes through the logger like any other line.

Libraries log through the standard library (psycopg's pool logs each failed connection attempt
with libpq's message, which can quote the whole DSN). ``route_stdlib_logging`` sends those records
through the same processors, redaction included; the server entry point installs it once per process.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import uuid
from contextvars import ContextVar, Token
from datetime import UTC, datetime
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
# Each pattern above needs one of these to match: a value without any is left as it is, unscanned.
_MAYBE_SECRET: Final = re.compile(r"(?i)bearer|eyj|passw|pwd|@")
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
    if not _MAYBE_SECRET.search(value):
        return value
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


_CORRELATION_ID: Final[ContextVar[str | None]] = ContextVar("botmox_correlation_id", default=None)
CORRELATION_KEY: Final = "correlation_id"


def add_correlation_id(_logger: Any, _method: str, event_dict: EventDict) -> EventDict:
    correlation = _CORRELATION_ID.get()
    if correlation is not None:
        event_dict.setdefault(CORRELATION_KEY, correlation)
    return event_dict


# What every line gets before rendering, whether it came from structlog or the standard library.
_ENRICH: Final[tuple[Processor, ...]] = (
    structlog.contextvars.merge_contextvars,
    add_correlation_id,
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


def bind_request(correlation_id: str) -> Token[str | None]:
    """Bind the request's id for every log line of this task; returns the token to reset."""
    return _CORRELATION_ID.set(correlation_id)


def unbind_request(token: Token[str | None]) -> None:
    _CORRELATION_ID.reset(token)


ACCESS_EVENT: Final = "request"


class AccessLog:
    """The request gate's line per request (``event: request``), at level ``info``."""

    def __init__(
        self,
        logger: structlog.typing.FilteringBoundLogger,
        *,
        level: str = "INFO",
        fmt: str = "json",
        stream: TextIO | None = None,
    ) -> None:
        self._logger = logger
        self._enabled = logging.getLevelNamesMapping()[level] <= logging.INFO
        self._direct = fmt == "json"
        self._stream = stream

    def write(self, *, method: str, path: str, status: int, duration_ms: float) -> None:
        if not self._enabled:
            return
        if not self._direct:
            self._logger.info(ACCESS_EVENT, method=method, path=path, status=status, duration_ms=duration_ms)
            return
        # The order of the processor chain: the call's keys, the event, the context, level, time.
        line: dict[str, object] = {
            "method": _scrub(method),
            "path": _scrub(path),
            "status": status,
            "duration_ms": duration_ms,
            "event": ACCESS_EVENT,
        }
        correlation = _CORRELATION_ID.get()
        if correlation is not None:
            line[CORRELATION_KEY] = _scrub(correlation)
        line["level"] = "info"
        line["timestamp"] = datetime.now(tz=UTC).isoformat().replace("+00:00", "Z")
        # Resolved per line, as structlog's PrintLogger does, so a replaced sys.stdout is followed.
        stream = self._stream or sys.stdout
        stream.write(json.dumps(line) + "\n")
        stream.flush()
