"""``/api/v1/agents``: pairing, registering, listing and revoking a tenant's agents, and sending
them commands (``docs/contracts/api-v1.md``; the data rules are the SQL's, ``docs/contracts/agents-sql.md``).

- ``POST /agents/pairings`` (an admin of the tenant: ``agents.ADMIN_ROLE``): a one-time code, shown
  once, valid 10 minutes.
- ``POST /agents/register`` (no token: the code is the credential): the agent's id and credential,
  shown once. The gate leaves it public and limits it per client address.
- ``GET /agents``: the tenant's agents, online or not.
- ``POST /agents/{agent_id}/revoke`` (an admin): refused from then on; its open commands cancelled.
- ``POST /agents/{agent_id}/commands``: queue a command for a connected agent, or 409
  ``AGENT_OFFLINE`` at once (no silent queue). Delivery is the tunnel's (``botmox_api.tunnel``).
- ``GET /agents/{agent_id}/commands/{command_id}``: its status, progress and result.
- ``POST /agents/{agent_id}/commands/{command_id}/cancel``: close a command that has not finished
  (any principal of the tenant, like sending it); 409 ``CONFLICT`` once it has.

Agents live in Supabase whatever ``DATA_BACKEND`` says; without ``SUPABASE_DB_URL`` every route but
the body checks answers 503 ``SUPABASE_CONFIG_ERROR``. Secrets are generated here and only their
digests reach the store.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable
from typing import Final, TypeVar

from fastapi import APIRouter, Request
from starlette.responses import Response

from botmox_api.agent_bodies import validate_command, validate_registration
from botmox_api.agents import ADMIN_ROLE, ONLINE_WITHIN_S, AgentRefused, new_secret, rfc3339, secret_digest
from botmox_api.auth import Principal
from botmox_api.deps import AgentStoreDep, ApiSettingsDep, CurrentPrincipal
from botmox_api.envelope import success_response
from botmox_api.errors import Forbidden, NotFound, from_agent_refusal, from_store_error
from botmox_api.model import AGENTS_SUBJECT, Action, StoreError
from botmox_api.openapi import (
    AUTHENTICATED_ERRORS,
    AgentListEnvelope,
    CommandEnvelope,
    PairingEnvelope,
    RegistrationEnvelope,
    RevocationEnvelope,
    errors,
)
from botmox_api.request_body import read_json_body

REGISTER_ROUTE: Final = "/agents/register"
_ADMIN: Final = frozenset({ADMIN_ROLE})
_STORE_ERRORS: Final = (502, 503)
_WRITE_BODY_ERRORS: Final = (400, 413, 415)

T = TypeVar("T")

router = APIRouter(prefix="/agents", tags=["agents"])


async def _call(action: Action, call: Awaitable[T]) -> T:
    """The store's answer, or its refusal or failure as the envelope error (one mapping each)."""
    try:
        return await call
    except AgentRefused as refusal:
        raise from_agent_refusal(refusal) from None
    except StoreError as error:
        raise from_store_error(error, action=action, subject=AGENTS_SUBJECT) from None


def _require_admin(principal: Principal) -> None:
    if not principal.has_any_role(_ADMIN):
        raise Forbidden("Role admin is required")


@router.post(
    "/pairings",
    status_code=201,
    summary="Create a one-time pairing code (tenant admin; valid 10 minutes)",
    response_model=PairingEnvelope,
    responses=errors(*AUTHENTICATED_ERRORS, *_STORE_ERRORS),
)
async def create_pairing(principal: CurrentPrincipal, store: AgentStoreDep) -> Response:
    _require_admin(principal)
    code = new_secret()
    pairing = await _call(
        "write", store.create_pairing(principal.tenant_id, uid=principal.uid, code_hash=secret_digest(code))
    )
    return success_response({"code": code, "expires_at": rfc3339(pairing.expires_at)}, status=201)


@router.post(
    "/register",
    status_code=201,
    summary="Exchange a pairing code for an agent id and credential (no token: the code is the credential)",
    response_model=RegistrationEnvelope,
    responses=errors(400, 401, 413, 415, 429, 500, *_STORE_ERRORS),
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/AgentRegistration"}}},
        }
    },
)
async def register(request: Request, store: AgentStoreDep, settings: ApiSettingsDep) -> Response:
    registration = validate_registration(await read_json_body(request, settings.api_max_body_bytes))
    credential = new_secret()
    agent = await _call(
        "write",
        store.register(
            code_hash=secret_digest(registration.code),
            credential_hash=secret_digest(credential),
            name=registration.name,
            version=registration.version,
            capabilities=registration.capabilities,
        ),
    )
    return success_response(agent.to_json(credential), status=201)


@router.get(
    "",
    summary="List the tenant's agents (online state, last seen, version)",
    response_model=AgentListEnvelope,
    responses=errors(*AUTHENTICATED_ERRORS, *_STORE_ERRORS),
)
async def list_agents(principal: CurrentPrincipal, store: AgentStoreDep) -> Response:
    agents = await _call(
        "read", store.list_agents(principal.tenant_id, uid=principal.uid, online_within_s=ONLINE_WITHIN_S)
    )
    return success_response([agent.to_json() for agent in agents])


@router.post(
    "/{agent_id}/revoke",
    summary="Revoke an agent (tenant admin): refused from then on, its open commands cancelled",
    response_model=RevocationEnvelope,
    responses=errors(*AUTHENTICATED_ERRORS, 400, 404, *_STORE_ERRORS),
)
async def revoke(agent_id: uuid.UUID, principal: CurrentPrincipal, store: AgentStoreDep) -> Response:
    _require_admin(principal)
    revocation = await _call("write", store.revoke(principal.tenant_id, uid=principal.uid, agent_id=agent_id))
    return success_response(revocation.to_json())


@router.post(
    "/{agent_id}/commands",
    status_code=201,
    summary="Send a command to a connected agent (409 AGENT_OFFLINE at once otherwise)",
    response_model=CommandEnvelope,
    responses=errors(*AUTHENTICATED_ERRORS, *_WRITE_BODY_ERRORS, 404, 409, *_STORE_ERRORS),
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/AgentCommandRequest"}}},
        }
    },
)
async def enqueue_command(
    agent_id: uuid.UUID,
    request: Request,
    principal: CurrentPrincipal,
    store: AgentStoreDep,
    settings: ApiSettingsDep,
) -> Response:
    command = validate_command(await read_json_body(request, settings.api_max_body_bytes))
    queued = await _call(
        "write",
        store.enqueue_command(
            principal.tenant_id,
            uid=principal.uid,
            agent_id=agent_id,
            kind=command.kind,
            params=command.params,
            deadline_s=command.deadline_s,
            online_within_s=ONLINE_WITHIN_S,
        ),
    )
    return success_response(queued.to_json(), status=201)


@router.get(
    "/{agent_id}/commands/{command_id}",
    summary="Read a command: status, progress, result",
    response_model=CommandEnvelope,
    responses=errors(*AUTHENTICATED_ERRORS, 400, 404, *_STORE_ERRORS),
)
async def read_command(
    agent_id: uuid.UUID, command_id: uuid.UUID, principal: CurrentPrincipal, store: AgentStoreDep
) -> Response:
    command = await _call(
        "read",
        store.read_command(principal.tenant_id, uid=principal.uid, agent_id=agent_id, command_id=command_id),
    )
    if command is None:
        raise NotFound("Command not found")
    return success_response(command.to_json())


@router.post(
    "/{agent_id}/commands/{command_id}/cancel",
    summary="Cancel a command that has not finished (its agent is not told: a late result is refused)",
    response_model=CommandEnvelope,
    responses=errors(*AUTHENTICATED_ERRORS, 400, 404, 409, *_STORE_ERRORS),
)
async def cancel_command(
    agent_id: uuid.UUID, command_id: uuid.UUID, principal: CurrentPrincipal, store: AgentStoreDep
) -> Response:
    cancelled = await _call(
        "write",
        store.cancel_command(
            principal.tenant_id, uid=principal.uid, agent_id=agent_id, command_id=command_id
        ),
    )
    return success_response(cancelled.to_json())
