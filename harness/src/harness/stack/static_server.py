"""``python -m harness.stack.static_server``: the frontend's static files and ``/runtime-config.js``.

The native runtime's stand-in for the frontend image (Caddy + ``entrypoint.sh``), configured by the
same variables: ``FRONTEND_ROOT`` (directory of static files), ``API_BASE_URL`` (the API's origin as
the browser reaches it), ``FRONTEND_DEMO_TOKEN`` (optional token the page starts with),
``FRONTEND_BIND`` (default 127.0.0.1), ``FRONTEND_PORT`` (default 8080). ``/runtime-config.js`` is
``window.__BOTMOX_CONFIG__ = {"apiBaseUrl": ..., "token": ... | null};``, as the image writes it.
"""

from __future__ import annotations

import json
import os
import signal
import sys
from pathlib import Path

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import Message, Receive, Scope, Send


def runtime_config_script(api_base_url: str, token: str | None) -> str:
    # json.dumps escapes quotes, backslashes and line separators, so any value is a safe JS literal.
    config = json.dumps({"apiBaseUrl": api_base_url, "token": token or None})
    return f"window.__BOTMOX_CONFIG__ = {config};\n"


_PAGE_HEADERS = ((b"cache-control", b"no-cache"), (b"x-content-type-options", b"nosniff"))


class _NoCacheStaticFiles(StaticFiles):
    """Static files revalidated on every load, as the image's Caddyfile serves them."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [*message.get("headers", ()), *_PAGE_HEADERS]
                message = {**message, "headers": headers}
            await send(message)

        await super().__call__(scope, receive, send_with_headers)


def create_app(static_root: Path, api_base_url: str, token: str | None = None) -> Starlette:
    script = runtime_config_script(api_base_url, token)

    async def runtime_config(_request: Request) -> Response:
        # Never cached: the API URL changes from one stack to the next.
        return Response(script, media_type="application/javascript", headers={"Cache-Control": "no-store"})

    async def missing_files(_request: Request) -> Response:
        return PlainTextResponse(f"no frontend files at {static_root}", status_code=404)

    routes: list[Route | Mount] = [Route("/runtime-config.js", runtime_config, methods=["GET", "HEAD"])]
    if static_root.is_dir():
        routes.append(Mount("/", app=_NoCacheStaticFiles(directory=static_root, html=True)))
    else:
        routes.append(Route("/{path:path}", missing_files, methods=["GET", "HEAD"]))
    return Starlette(routes=routes)


def main() -> int:
    root = Path(os.environ.get("FRONTEND_ROOT", "services/frontend/public"))
    api_base_url = os.environ.get("API_BASE_URL", "")
    host = os.environ.get("FRONTEND_BIND", "127.0.0.1")
    try:
        port = int(os.environ.get("FRONTEND_PORT", "8080"))
    except ValueError:
        print(
            f"static server: FRONTEND_PORT={os.environ.get('FRONTEND_PORT')!r} is not a number",
            file=sys.stderr,
        )
        return 2
    if not root.is_dir():
        print(f"static server: warning: {root} does not exist; only /runtime-config.js is served", flush=True)
    # uvicorn re-raises the signal it stopped on; a no-op handler makes a SIGTERM stop exit 0.
    signal.signal(signal.SIGTERM, lambda _signum, _frame: None)
    app = create_app(root, api_base_url, os.environ.get("FRONTEND_DEMO_TOKEN"))
    uvicorn.run(app, host=host, port=port, log_level="info", server_header=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
