"""Health endpoints (no authentication): ``/health``, ``/health/live``, ``/health/ready``.

The store checks come from the application's ``ReadinessCache`` (``readiness.py``): at most one
probe per store per ``HEALTH_CACHE_TTL_S``, however many health requests arrive."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Final

from fastapi import APIRouter
from starlette.responses import Response

from botmox_api import __version__
from botmox_api.deps import ApiSettingsDep, ReadinessDep, StoreSetDep
from botmox_api.envelope import success_response
from botmox_api.errors import NotReady
from botmox_api.model import Readiness
from botmox_api.openapi import HealthEnvelope, LiveEnvelope, ReadyEnvelope, errors

SERVICE: Final = "bot-mox-api-v1"

router = APIRouter(prefix="/health", tags=["health"])


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@router.get("", response_model=HealthEnvelope, responses=errors(500))
async def health(stores: StoreSetDep, readiness: ReadinessDep, settings: ApiSettingsDep) -> Response:
    checks = await readiness.current()
    return success_response(
        {
            "service": SERVICE,
            "version": __version__,
            "timestamp": _now(),
            "data_backend": settings.data_backend,
            "supabase_configured": stores.supabase_configured,
            "supabase_ready": checks.supabase.ready,
            "rtdb_configured": stores.rtdb_configured,
            "rtdb_ready": checks.rtdb.ready,
        }
    )


@router.get("/live", response_model=LiveEnvelope, responses=errors(500))
async def live() -> Response:
    return success_response({"service": SERVICE, "timestamp": _now(), "status": "live"})


def _check_json(required: bool, readiness: Readiness) -> dict[str, object]:
    check: dict[str, object] = {"required": required, "ready": readiness.ready}
    if not readiness.ready:
        check["reason"] = readiness.reason or "Not ready"
    return check


@router.get(
    "/ready",
    response_model=ReadyEnvelope,
    responses={
        503: {
            "model": errors(503)[503]["model"],
            "description": "NOT_READY: a required dependency is down; details holds the checks",
        },
        **errors(500),
    },
)
async def ready(readiness: ReadinessDep, settings: ApiSettingsDep) -> Response:
    checks = await readiness.current()
    supabase, rtdb = checks.supabase, checks.rtdb
    # The active mode routes storage_policy to Supabase only in supabase mode; generic paths
    # always live in RTDB, so RTDB is required in both modes.
    supabase_required = settings.data_backend == "supabase" or settings.require_supabase_ready
    rtdb_required = True  # REQUIRE_RTDB_READY cannot relax this; it is accepted for symmetry
    is_ready = (supabase.ready or not supabase_required) and (rtdb.ready or not rtdb_required)
    body = {
        "status": "ready" if is_ready else "not_ready",
        "ready": is_ready,
        "checks": {
            "supabase": _check_json(supabase_required, supabase),
            "rtdb": _check_json(rtdb_required, rtdb),
        },
    }
    if not is_ready:
        raise NotReady("A required dependency is not ready", details=body)
    return success_response(body)
