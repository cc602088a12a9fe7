"""Health endpoints (no authentication): ``/health``, ``/health/live``, ``/health/ready``."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from datetime import UTC, datetime
from typing import Final

from fastapi import APIRouter
from starlette.responses import Response

from botmox_api import __version__
from botmox_api.backends import StoreSetLike
from botmox_api.deps import ApiSettingsDep, StoreSetDep
from botmox_api.envelope import success_response
from botmox_api.errors import NotReady
from botmox_api.openapi_docs import errors
from botmox_api.schemas import HealthEnvelope, LiveEnvelope, ReadyEnvelope
from botmox_api.stores.protocols import Readiness

SERVICE: Final = "bot-mox-api-v1"
CHECK_TIMEOUT_S: Final = 3.0

router = APIRouter(prefix="/health", tags=["health"])


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


async def _bounded(check: Awaitable[Readiness]) -> Readiness:
    try:
        return await asyncio.wait_for(check, CHECK_TIMEOUT_S)
    except TimeoutError:
        return Readiness(False, f"Check timed out after {CHECK_TIMEOUT_S:g} s")
    except Exception as error:  # a check must never turn health into a 500
        return Readiness(False, f"Check failed: {type(error).__name__}")


async def _checks(stores: StoreSetLike) -> tuple[Readiness, Readiness]:
    supabase, rtdb = await asyncio.gather(_bounded(stores.check_supabase()), _bounded(stores.check_rtdb()))
    return supabase, rtdb


@router.get("", response_model=HealthEnvelope, responses=errors(500))
async def health(stores: StoreSetDep, settings: ApiSettingsDep) -> Response:
    supabase, rtdb = await _checks(stores)
    return success_response(
        {
            "service": SERVICE,
            "version": __version__,
            "timestamp": _now(),
            "data_backend": settings.data_backend,
            "supabase_configured": stores.supabase_configured,
            "supabase_ready": supabase.ready,
            "rtdb_configured": stores.rtdb_configured,
            "rtdb_ready": rtdb.ready,
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
async def ready(stores: StoreSetDep, settings: ApiSettingsDep) -> Response:
    supabase, rtdb = await _checks(stores)
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
