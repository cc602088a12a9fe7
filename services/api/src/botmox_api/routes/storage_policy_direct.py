"""The direct route of ``GET``, ``PUT`` and ``PATCH /api/v1/settings/storage_policy``, the API's hot
operations: served by a plain ASGI handler just inside the request gate, ahead of FastAPI.

Why: once tokens were cached, the access line cheap and no dependency ran in a thread, FastAPI's
own layers still took about three quarters of such a request's time in the application (a
pyinstrument profile of a ``GET`` on memory stores: 77 %): ``ExceptionMiddleware``,
``AsyncExitStackMiddleware``, matching the path against every route of the included routers, the
route's wrappers and dependency solving (a cache key per dependency, query parameters parsed for
nothing). In process, on one core, a ``GET`` cost the application about 120 us through FastAPI's
route and costs about 30 us here.

The handler does only what those operations need: it takes the principal the gate stored, calls
the same functions as the FastAPI routes (``routes.settings.read_storage_policy`` and
``write_storage_policy``, whose body, ``If-Match`` and store rules live in ``request_body.py`` and
the store; a read offers its answer to shadow reads when they are on, a ``put_nowait``), and turns
an ``ApiError`` into its answer with the exception handler's own function
(``errors.api_error_response``, which logs a 502 and counts a store failure). Anything else it
raises goes to the gate, which answers 500, as it does for a FastAPI route.

Everything else is left to FastAPI: any other path (``storage_policy/`` and the other spellings reach
the generic settings route), any other method (405 with ``Allow``, HEAD included). The FastAPI routes
of these three operations stay registered: they are what the OpenAPI document describes, with the
same handlers behind them, and the test suite holds the direct answers byte for byte to theirs
(``tests/test_request_path.py``).
"""

from __future__ import annotations

from typing import Final

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send
from structlog.typing import FilteringBoundLogger

from botmox_api.errors import ApiError, api_error_response
from botmox_api.gate import required_principal
from botmox_api.request_metrics import RequestMetrics
from botmox_api.routes.settings import read_storage_policy, write_storage_policy
from botmox_api.shadow_reads import ShadowReads
from botmox_api.stores.protocols import StoragePolicyStore

DIRECT_METHODS: Final = frozenset({"GET", "PUT", "PATCH"})


class StoragePolicyRoute:
    """ASGI middleware, added inside the gate: ``path`` with a method of ``DIRECT_METHODS`` is answered
    here, anything else passes to ``app``."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        path: str,
        store: StoragePolicyStore,
        shadow: ShadowReads | None,
        max_body_bytes: int,
        logger: FilteringBoundLogger,
        request_metrics: RequestMetrics,
    ) -> None:
        self.app = app
        self._request_metrics = request_metrics
        self._path = path
        self._store = store
        self._shadow = shadow
        self._max_body_bytes = max_body_bytes
        self._logger = logger

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] != self._path or scope["method"] not in DIRECT_METHODS:
            await self.app(scope, receive, send)
            return
        response = await self._answer(scope, receive)
        await response(scope, receive, send)

    async def _answer(self, scope: Scope, receive: Receive) -> Response:
        try:
            principal = required_principal(scope)
            if scope["method"] == "GET":
                return await read_storage_policy(self._store, principal, self._shadow)
            request = Request(scope, receive)
            return await write_storage_policy(request, self._store, principal, self._max_body_bytes)
        except ApiError as error:
            return api_error_response(error, self._logger, self._request_metrics)
