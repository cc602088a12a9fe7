"""``python -m botmox_api``: read the configuration once and serve the app with uvicorn.

An invalid configuration stops the process before anything starts: exit code 2 and one line on
stderr naming the variable, its value (secrets redacted) and what is allowed.

With ``API_WORKERS`` above 1 this process becomes uvicorn's supervisor: it validates the
configuration as above, then spawns the workers, each a fresh interpreter that builds its own app
(``app_from_environment``) from the same environment. On SIGTERM or SIGINT the supervisor stops
its workers and waits for them before it exits. Their Prometheus metrics are summed across them
through a directory made for this start (``PROMETHEUS_MULTIPROC_DIR``, removed when the supervisor
exits; ``metrics.py``), unless the environment names one already.

uvicorn serves the agents' WebSocket as the tunnel requires (``tunnel.UVICORN_WEBSOCKETS``). On
shutdown uvicorn itself closes open WebSockets with 1012 (service restart) before the app's lifespan
ends; the agents reconnect after either that or the 1001 the lifespan sends to any tunnel left.
"""

from __future__ import annotations

import contextlib
import gc
import os
import sys
import tempfile
from collections.abc import Iterator
from typing import Final

import uvicorn
from fastapi import FastAPI

from botmox_api import logs
from botmox_api.app import create_app
from botmox_api.config import ApiSettings, ConfigError, load_settings
from botmox_api.metrics import MULTIPROCESS_ENV
from botmox_api.tunnel import UVICORN_WEBSOCKETS

EXIT_CONFIG_ERROR: Final = 2
# What each worker imports and calls (uvicorn's factory=True) to build its app.
APP_FACTORY: Final = "botmox_api.__main__:app_from_environment"


def _export_for_firebase_admin(settings: ApiSettings) -> None:
    # firebase-admin reads the auth emulator host from the process environment only; a value that
    # came from .env must reach it too.
    if settings.firebase_auth_emulator_host and "FIREBASE_AUTH_EMULATOR_HOST" not in os.environ:
        os.environ["FIREBASE_AUTH_EMULATOR_HOST"] = settings.firebase_auth_emulator_host


def _prepared_app() -> tuple[ApiSettings, FastAPI]:
    """The configuration, read once, and an app built from it; raises what an invalid one raises."""
    settings = load_settings()
    logs.route_stdlib_logging(level=settings.log_level, fmt=settings.log_format)
    _export_for_firebase_admin(settings)
    app = create_app(settings)
    # Everything built so far (modules, the app, its OpenAPI models) lives as long as the process.
    # Frozen, the collector's full passes no longer walk those objects: under load such a pass
    # stalled every request in flight for tens of milliseconds (the p99 of docs/performance.md).
    gc.collect()
    gc.freeze()
    return settings, app


def app_from_environment() -> FastAPI:
    """A worker's app: the supervisor validated the same configuration before it spawned this one."""
    return _prepared_app()[1]


@contextlib.contextmanager
def _metrics_shared_by_workers(several: bool) -> Iterator[None]:
    """With several workers: a fresh ``PROMETHEUS_MULTIPROC_DIR`` for this start, inherited by the
    workers (each imports prometheus-client after it is set), removed at the end."""
    if not several or os.environ.get(MULTIPROCESS_ENV):
        yield
        return
    with tempfile.TemporaryDirectory(prefix="botmox-api-metrics-") as directory:
        os.environ[MULTIPROCESS_ENV] = directory
        try:
            yield
        finally:
            os.environ.pop(MULTIPROCESS_ENV, None)


def main() -> None:
    try:
        settings, app = _prepared_app()
    except (ConfigError, ValueError) as error:
        print(f"botmox-api: invalid configuration: {error}", file=sys.stderr)
        sys.exit(EXIT_CONFIG_ERROR)
    several = settings.api_workers > 1
    # uvicorn runs several workers only from an import string; the app built above was then only
    # the check that the configuration holds (it does no I/O until its lifespan starts).
    served: FastAPI | str = APP_FACTORY if several else app
    with _metrics_shared_by_workers(several):
        uvicorn.run(
            served,
            factory=several,
            workers=settings.api_workers,
            host=settings.host,
            port=settings.port,
            log_level=settings.log_level.lower(),
            log_config=None,  # uvicorn's own lines go through route_stdlib_logging too
            access_log=False,  # the request gate writes one structured line per request
            # The request gate alone reads X-Forwarded-For (FORWARDED_ALLOW_IPS, gate.ClientAddresses);
            # uvicorn's own proxy headers would rewrite the client first, from the same variable.
            proxy_headers=False,
            server_header=False,
            **UVICORN_WEBSOCKETS,
        )


if __name__ == "__main__":
    main()
