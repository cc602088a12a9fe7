"""``python -m botmox_api``: read the configuration once and serve the app with uvicorn.

An invalid configuration stops the process before anything starts: exit code 2 and one line on
stderr naming the variable, its value (secrets redacted) and what is allowed.
"""

from __future__ import annotations

import os
import sys
from typing import Final

import uvicorn

from botmox_api import logs
from botmox_api.app import create_app
from botmox_api.config import ApiSettings, ConfigError, load_settings

EXIT_CONFIG_ERROR: Final = 2


def _export_for_firebase_admin(settings: ApiSettings) -> None:
    # firebase-admin reads the auth emulator host from the process environment only; a value that
    # came from .env must reach it too.
    if settings.firebase_auth_emulator_host and "FIREBASE_AUTH_EMULATOR_HOST" not in os.environ:
        os.environ["FIREBASE_AUTH_EMULATOR_HOST"] = settings.firebase_auth_emulator_host


def main() -> None:
    try:
        settings = load_settings()
        logs.route_stdlib_logging(level=settings.log_level, fmt=settings.log_format)
        _export_for_firebase_admin(settings)
        app = create_app(settings)
    except (ConfigError, ValueError) as error:
        print(f"botmox-api: invalid configuration: {error}", file=sys.stderr)
        sys.exit(EXIT_CONFIG_ERROR)
    uvicorn.run(
        app,
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level.lower(),
        log_config=None,  # uvicorn's own lines go through route_stdlib_logging too
        access_log=False,  # the request gate writes one structured line per request
        # The request gate alone reads X-Forwarded-For (FORWARDED_ALLOW_IPS, gate.ClientAddresses);
        # uvicorn's own proxy headers would rewrite the client first, from the same variable.
        proxy_headers=False,
        server_header=False,
    )


if __name__ == "__main__":
    main()
