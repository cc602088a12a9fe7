"""``GET /metrics``: the API's Prometheus metrics (``metrics.ApiMetrics``), outside ``/api/v1`` where
scrapers look for them, for the internal infra token only (``Authorization: Bearer <token>``): the
figures tell how many agents a deployment has and what they run. A refusal is the API's envelope
(401); the metrics themselves are Prometheus' text format, not an envelope.
"""

from __future__ import annotations

from typing import Final

from fastapi import APIRouter, Request
from starlette.responses import Response

from botmox_api.auth import Authenticator, bearer_token
from botmox_api.errors import Unauthorized
from botmox_api.metrics import CONTENT_TYPE, ApiMetrics

METRICS_PATH: Final = "/metrics"
_INFRA: Final = frozenset({"infra"})


def build_router(authenticator: Authenticator, metrics: ApiMetrics) -> APIRouter:
    router = APIRouter()

    @router.get(METRICS_PATH, include_in_schema=False)
    async def prometheus_metrics(request: Request) -> Response:
        principal = authenticator.internal(bearer_token(request.headers.get("authorization")))
        if principal is None or not principal.has_any_role(_INFRA):
            return Unauthorized("The internal infra token is required").response()
        return Response(metrics.render(), media_type=CONTENT_TYPE)

    return router
