"""The agent's structured log: one JSON object a line on stderr (``event`` names like ``agent.connected``,
``command.finished``), built per process rather than through structlog's global configuration.

What goes in is chosen at each call: ids, kinds, outcomes, codes and durations; never a command's
params, an executor's data, the credential or a pairing code.
"""

from __future__ import annotations

import logging
import sys
from typing import TextIO

import structlog
from structlog.typing import FilteringBoundLogger

AgentLog = FilteringBoundLogger


def agent_logger(stream: TextIO | None = None, level: int = logging.INFO) -> AgentLog:
    logger: AgentLog = structlog.wrap_logger(
        structlog.PrintLogger(stream if stream is not None else sys.stderr),
        wrapper_class=structlog.make_filtering_bound_logger(level),
        processors=[
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.JSONRenderer(sort_keys=False),
        ],
        cache_logger_on_first_use=False,
    )
    return logger
