"""Health probes from the description: an HTTP status, or a PostgreSQL connection."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import psycopg

from harness.stack.description import HealthCheck

POLL_S = 0.1


class ServiceUnhealthy(RuntimeError):
    """A service exited or did not become healthy in time; the message carries its log's tail."""


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


def log_tail(path: Path, limit: int = 3000) -> str:
    try:
        return path.read_text(errors="replace")[-limit:]
    except OSError:
        return "(no log)"


def wait_healthy(
    name: str, check: HealthCheck, target: str, *, alive: Callable[[], bool], log_path: Path
) -> float:
    """Probe until healthy; returns the seconds it took. Raises ``ServiceUnhealthy`` when the process
    dies or ``check.timeout_s`` passes."""
    began = time.monotonic()
    deadline = began + check.timeout_s
    while time.monotonic() < deadline:
        if probe(check, target):
            return time.monotonic() - began
        if not alive():
            raise ServiceUnhealthy(f"{name} exited during start-up; log {log_path}:\n{log_tail(log_path)}")
        time.sleep(POLL_S)
    raise ServiceUnhealthy(
        f"{name} not healthy after {check.timeout_s:.0f} s ({target}); log {log_path}:\n{log_tail(log_path)}"
    )


def port_is_free(port: int) -> bool:
    """Nothing listens on 127.0.0.1:port. SO_REUSEADDR, as every server here sets it, so connections
    lingering in TIME_WAIT after a server stopped do not count as taking the port."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as candidate:
        candidate.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            candidate.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def port_is_listening(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as client:
        client.settimeout(0.5)
        return client.connect_ex(("127.0.0.1", port)) == 0


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe_socket:
        probe_socket.bind(("127.0.0.1", 0))
        port: int = probe_socket.getsockname()[1]
        return port
