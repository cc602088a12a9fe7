"""CORS as ``docs/contracts/api-v1.md`` states it, not Starlette's middleware, whose refusals are plain text.

A preflight (``OPTIONS`` with ``Origin`` and ``Access-Control-Request-Method``) from a listed origin gets
204 with the full method and header lists; from any other origin, 403 ``FORBIDDEN`` in the envelope
and no ``Access-Control-Allow-*`` header. Simple responses to a listed origin carry the allow-origin
and expose headers. Origins compare case-insensitively; ``*`` in ``CORS_ORIGINS`` allows any origin.

Every answer depends on ``Origin``: a listed origin gets ``Access-Control-Allow-Origin``, an unlisted or
missing one does not, and a preflight is 204 or 403 by origin. So every response carries
``Vary: Origin`` (``VARY``), or a shared cache could hand one origin's answer to another.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final

ALLOWED_METHODS: Final = ("GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")
ALLOWED_HEADERS: Final = ("Authorization", "Content-Type", "If-Match", "x-correlation-id")
EXPOSED_HEADERS: Final = ("ETag", "x-correlation-id")
PREFLIGHT_MAX_AGE_S: Final = 600
VARY: Final = (b"vary", b"Origin")

RawHeaders = list[tuple[bytes, bytes]]


class CorsPolicy:
    def __init__(self, origins: Iterable[str]) -> None:
        normalised = {o.strip().rstrip("/").lower() for o in origins if o.strip()}
        self._any = "*" in normalised
        self._origins = frozenset(normalised - {"*"})
        # Built once: the header lists never change.
        self._preflight_tail: RawHeaders = [
            (b"access-control-allow-methods", ", ".join(ALLOWED_METHODS).encode()),
            (b"access-control-allow-headers", ", ".join(ALLOWED_HEADERS).encode()),
            (b"access-control-max-age", str(PREFLIGHT_MAX_AGE_S).encode()),
        ]
        self._expose = (b"access-control-expose-headers", ", ".join(EXPOSED_HEADERS).encode())

    def allows(self, origin: str) -> bool:
        return self._any or origin.rstrip("/").lower() in self._origins

    def preflight_headers(self, origin: str) -> RawHeaders:
        return [(b"access-control-allow-origin", origin.encode("latin-1")), *self._preflight_tail]

    def response_headers(self, origin: str) -> RawHeaders:
        return [(b"access-control-allow-origin", origin.encode("latin-1")), self._expose]
