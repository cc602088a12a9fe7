"""Caddy in front of everything, the only listener on 80 and 443: automatic TLS (ACME) in production,
its internal CA in tests; ``/api`` to the release's API, ``/api/v1/agents/ws`` as a long-lived
WebSocket, ``/rest``, ``/auth`` and ``/storage`` to Supabase's gateway, the rest to the frontend; HSTS
and the other security headers on every answer.

A rollout never touches the Caddyfile. Caddy sends each request to whichever release slot answers its
own health checks (both slots are its upstreams; the idle slot is stopped, so it fails them): a new
slot takes traffic once it is healthy, a stopped one no longer does, and a request that meets a slot
going away is tried again on the other (``lb_try_duration``; Caddy keeps no idle connection to a slot,
so every attempt is a fresh connection, which is always safe to retry). A reload, by contrast, closes
the clients' idle keep-alive connections, and one sent on at that moment fails: reloads happen only
when the site's configuration changes.

The API believes ``X-Forwarded-For`` from 127.0.0.1 only (``FORWARDED_ALLOW_IPS``, see release.py), and
Caddy replaces whatever a client sent with the client's own address, so the header cannot be forged.
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
# Caddy's active health checks of each slot: liveness (a slot whose database is down still answers
# with its own 503 envelope), every second.
API_HEALTH_PATH: Final = "/api/v1/health/live"
FRONTEND_HEALTH_PATH: Final = "/runtime-config.js"
HEALTH_INTERVAL: Final = "1s"
# How long a request waits for a healthy slot (a rollout's hand-over takes about a health interval).
TRY_DURATION: Final = "15s"
SECURITY_HEADERS: Final = {
    "Strict-Transport-Security": "max-age=63072000; includeSubDomains",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "strict-origin-when-cross-origin",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=(), payment=()",
    "Cross-Origin-Opener-Policy": "same-origin",
}


def proxy_context(data: Any) -> dict[str, Any]:
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
        "api_upstreams": [f"127.0.0.1:{layout.API_PORTS[slot]}" for slot in layout.SLOTS],
        "frontend_upstreams": [f"127.0.0.1:{layout.FRONTEND_PORTS[slot]}" for slot in layout.SLOTS],
        "api_health_path": API_HEALTH_PATH,
        "frontend_health_path": FRONTEND_HEALTH_PATH,
        "health_interval": HEALTH_INTERVAL,
        "try_duration": TRY_DURATION,
        "gateway_upstream": f"127.0.0.1:{layout.GATEWAY_PORT}",
        "gateway": supabase_context(data)["profile"] == "full",
        "gateway_paths": GATEWAY_PATHS,
        "agents_ws_path": AGENTS_WS_PATH,
        "security_headers": SECURITY_HEADERS,
    }


@deploy("Reverse proxy")
def proxy() -> None:
    """Caddy in front of both release slots (whichever is healthy takes traffic).

    Examples:
        .. code:: python

            from deploy.tasks.proxy import proxy
            proxy()  # data: domain, tls ("acme" or "internal"), acme_email
    """
    context = proxy_context(host.data)
    apt.packages(name="Install Caddy", packages=["caddy"])
    caddyfile = files.put(
        name="Caddyfile: the site, both release slots behind health checks",
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
    # Only when the site's configuration changed: a reload closes the clients' idle connections.
    systemd.service(name="Reload Caddy", service="caddy", reloaded=True, _if=caddyfile.did_change)
