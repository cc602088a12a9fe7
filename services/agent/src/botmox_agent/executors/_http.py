"""The executors' HTTP clients: timeouts, TLS trust, and no proxies from the environment.

SyncThing and Proxmox VE sit on the agent's own network: ``HTTP(S)_PROXY`` variables meant for the
agent's way out would only get in the way, so clients ignore the environment (``trust_env=False``).
"""

from __future__ import annotations

import ssl
from pathlib import Path

import httpx


def tls_trust(verify: bool, ca_file: Path | None) -> ssl.SSLContext | bool:
    """``False`` (no verification), a context trusting ``ca_file``, or ``True`` (the public CAs)."""
    if not verify:
        return False
    if ca_file is not None:
        return ssl.create_default_context(cafile=str(ca_file))
    return True


def async_client(
    base_url: str,
    *,
    timeout: float,
    verify: ssl.SSLContext | bool,
    transport: httpx.AsyncBaseTransport | None,
) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        base_url=base_url,
        timeout=httpx.Timeout(timeout),
        verify=verify,
        trust_env=False,
        follow_redirects=False,
        transport=transport,
    )


def transport_problem(error: httpx.TransportError) -> str:
    """What went wrong on the way, in words (httpx's messages hold no headers, so no credential)."""
    if isinstance(error, httpx.TimeoutException):
        return "timed out"
    text = str(error)
    if "CERTIFICATE_VERIFY_FAILED" in text:
        return "its TLS certificate is not trusted (a ca_file may be missing)"
    if isinstance(error, httpx.ConnectError):
        return f"cannot connect ({text or type(error).__name__})"
    return f"the connection failed ({type(error).__name__})"


def short(text: str, limit: int = 200) -> str:
    """A peer's error text, on one line, cut to ``limit`` characters."""
    line = " ".join(text.split())
    return line if len(line) <= limit else line[: limit - 3] + "..."
