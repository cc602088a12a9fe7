"""Caddy in front of everything, the only listener on 80 and 443: automatic TLS (ACME) in production,
its internal CA in tests; ``/api`` to the active release's API (its workers), ``/api/v1/agents/ws``
as a long-lived WebSocket, ``/rest``, ``/auth`` and ``/storage`` to Supabase's gateway, the rest to the
frontend; HSTS and the other security headers on every answer.

The API believes ``X-Forwarded-For`` from 127.0.0.1 only (``FORWARDED_ALLOW_IPS``, see release.py), and
Caddy replaces whatever a client sent with the client's own address, so the header cannot be forged.
A changed Caddyfile is validated, then applied with ``systemctl reload caddy``: a graceful reload that
finishes requests in flight, which is how a rollout switches slots without failing one.
"""

from __future__ import annotations

from typing import Any, Final

from pyinfra.api.deploy import deploy
from pyinfra.api.exceptions import DeployError
from pyinfra.context import host
from pyinfra.operations import apt, files, server, systemd

from deploy.tasks import layout
from deploy.tasks.supabase import supabase_context
from deploy.tasks.templating import rendered

TLS_MODES: Final = ("acme", "internal")
CADDYFILE: Final = "/etc/caddy/Caddyfile"
AGENTS_WS_PATH: Final = "/api/v1/agents/ws"
GATEWAY_PATHS: Final = ("/rest/*", "/auth/*", "/storage/*")
SECURITY_HEADERS: Final = {
    "Strict-Transport-Security": "max-age=63072000; includeSubDomains",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "strict-origin-when-cross-origin",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=(), payment=()",
    "Cross-Origin-Opener-Policy": "same-origin",
}


def proxy_context(data: Any, slot: str) -> dict[str, Any]:
    tls = data.get("tls", "acme")
    if tls not in TLS_MODES:
        raise DeployError(f"tls must be one of {TLS_MODES}, not {tls!r}")
    domain = data.get("domain")
    if not domain:
        raise DeployError("domain is not set (inventories/README.md)")
    if tls == "acme" and not data.get("acme_email"):
        raise DeployError("tls 'acme' needs acme_email (Let's Encrypt's contact for expiry notices)")
    return {
        "domain": domain,
        "tls": tls,
        "acme_email": data.get("acme_email", ""),
        "acme_ca": data.get("acme_ca", ""),
        "api_upstream": f"127.0.0.1:{layout.API_PORTS[slot]}",
        "frontend_upstream": f"127.0.0.1:{layout.FRONTEND_PORTS[slot]}",
        "gateway_upstream": f"127.0.0.1:{layout.GATEWAY_PORT}",
        "gateway": supabase_context(data)["profile"] == "full",
        "gateway_paths": GATEWAY_PATHS,
        "agents_ws_path": AGENTS_WS_PATH,
        "security_headers": SECURITY_HEADERS,
        "slot": slot,
    }


@deploy("Reverse proxy")
def proxy(slot: str) -> None:
    """Caddy, with the release ``slot`` taking traffic.

    Examples:
        .. code:: python

            from deploy.tasks.proxy import proxy
            proxy(slot="blue")  # data: domain, tls ("acme" or "internal"), acme_email
    """
    context = proxy_context(host.data, slot)
    apt.packages(name="Install Caddy", packages=["caddy"])
    caddyfile = files.put(
        name=f"Caddyfile: traffic to slot {slot}",
        src=rendered("caddy/Caddyfile.j2", **context),
        dest=CADDYFILE,
        mode="644",
    )
    server.shell(
        name="Validate the Caddyfile",
        commands=[f"caddy validate --adapter caddyfile --config {CADDYFILE}"],
        _if=caddyfile.did_change,
    )
    systemd.service(name="Run Caddy", service="caddy", running=True, enabled=True)
    systemd.service(name="Reload Caddy (graceful)", service="caddy", reloaded=True, _if=caddyfile.did_change)
