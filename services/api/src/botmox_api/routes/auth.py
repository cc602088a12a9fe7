"""``GET /api/v1/auth/verify``: the caller's principal."""

from __future__ import annotations

from fastapi import APIRouter
from starlette.responses import Response

from botmox_api.deps import CurrentPrincipal
from botmox_api.envelope import success_response
from botmox_api.openapi import AUTHENTICATED_ERRORS, PrincipalEnvelope, errors

router = APIRouter(prefix="/auth", tags=["auth"])


@router.get("/verify", response_model=PrincipalEnvelope, responses=errors(*AUTHENTICATED_ERRORS))
async def verify(principal: CurrentPrincipal) -> Response:
    return success_response(principal.to_json())
