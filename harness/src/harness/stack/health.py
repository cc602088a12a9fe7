"""Health probes from the description: an HTTP status, or a PostgreSQL connection."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import httpx
import psycopg

from harness import processes
from harness.processes import ProcessNotReady
from harness.stack.description import HealthCheck

POLL_S = 0.1
# A service that exits or does not become healthy in time: the process module's error.
ServiceUnhealthy = ProcessNotReady


def probe(check: HealthCheck, target: str) -> bool:
    """One attempt: ``target`` is the health URL (http) or an admin DSN (postgres)."""
    if check.kind == "postgres":
        try:
            with psycopg.connect(target, connect_timeout=2):
                return True
        except psycopg.OperationalError:
            return False
    try:
        with httpx.Client(timeout=2.0, trust_env=False) as client:
            return client.get(target).status_code == check.expect_status
    except httpx.TransportError:
        return False


def wait_healthy(
    name: str, check: HealthCheck, target: str, *, alive: Callable[[], bool], log_path: Path
) -> None:
    """Probe until healthy. Raises ``ServiceUnhealthy`` when the process dies or ``check.timeout_s``
    passes."""
    processes.wait_ready(
        name,
        lambda: True if probe(check, target) else None,
        alive=alive,
        timeout_s=check.timeout_s,
        log_path=log_path,
        poll_s=POLL_S,
        waiting_for=target,
    )
