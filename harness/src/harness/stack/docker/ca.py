"""The host's CA bundle, handed to image builds and containers (never copied into the repository).

Machines behind a TLS-inspecting proxy reach PyPI only with the host's bundle. Builds run with the
classic builder (the Docker SDK has no build secrets), so the bundle is served over HTTP on
127.0.0.1 for the length of the builds, and the Dockerfiles fetch it, use it and delete it within
one step (``ARG CA_BUNDLE_URL``): it never lands in a layer. Containers get it as a read-only bind
mount with ``SSL_CERT_FILE``/``REQUESTS_CA_BUNDLE`` pointing at it.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

DEFAULT_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
CONTAINER_PATH = "/etc/botmox/host-ca.pem"
_BUNDLE_PATH = "/ca.pem"


def host_bundle() -> Path | None:
    """``$SSL_CERT_FILE`` when it names a file, else Debian's bundle, else ``None``."""
    for candidate in (os.environ.get("SSL_CERT_FILE", ""), str(DEFAULT_BUNDLE)):
        if candidate and Path(candidate).is_file():
            return Path(candidate)
    return None


def container_environment(bundle: Path | None) -> dict[str, str]:
    if bundle is None:
        return {}
    return {"SSL_CERT_FILE": CONTAINER_PATH, "REQUESTS_CA_BUNDLE": CONTAINER_PATH}


def container_volumes(bundle: Path | None) -> dict[str, dict[str, str]]:
    if bundle is None:
        return {}
    return {str(bundle): {"bind": CONTAINER_PATH, "mode": "ro"}}


def _handler_for(payload: bytes) -> type[BaseHTTPRequestHandler]:
    class BundleHandler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path != _BUNDLE_PATH:
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("Content-Type", "application/x-pem-file")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, format: str, *args: object) -> None:
            return None

    return BundleHandler


def _preferred_port(payload: bytes) -> int:
    """A port that depends only on the bundle: build arguments are part of the layer cache key, so a
    URL that changed with every build would rebuild every layer after ``ARG CA_BUNDLE_URL``."""
    return 20000 + int.from_bytes(hashlib.sha256(payload).digest()[:4], "big") % 20000


@contextlib.contextmanager
def served(bundle: Path | None) -> Iterator[str]:
    """The bundle's URL on 127.0.0.1 while the block runs; ``""`` when there is no bundle."""
    if bundle is None:
        yield ""
        return
    payload = bundle.read_bytes()
    handler = _handler_for(payload)
    try:
        server = ThreadingHTTPServer(("127.0.0.1", _preferred_port(payload)), handler)
    except OSError:
        # Taken: any port works, at the price of a cache miss in the builds.
        server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, name="ca-bundle-server", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}{_BUNDLE_PATH}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)
