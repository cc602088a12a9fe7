"""``/api/v1/settings/storage_policy``: one document per tenant, versioned, served with an ETag.

Also reached from the generic settings route when a path normalises to ``storage_policy``
(``/settings/settings/storage_policy``), so both spellings behave identically.
"""

from __future__ import annotations

from typing import Final

from fastapi import APIRouter, Request
from starlette.responses import Response

from botmox_api.deps import ApiSettingsDep, CurrentPrincipal, StoragePolicyStoreDep
from botmox_api.envelope import success_response
from botmox_api.errors import from_store_error
from botmox_api.model import StoragePolicy, StoreError
from botmox_api.openapi_docs import ETAG_HEADER, READ_ERRORS, WRITE_ERRORS, errors, storage_policy_write_body
from botmox_api.principal import Principal
from botmox_api.request_body import read_json_body
from botmox_api.schemas import StoragePolicyEnvelope
from botmox_api.storage_policy_body import etag_of, parse_if_match, validate_storage_policy_body
from botmox_api.stores.protocols import StoragePolicyStore

SUBJECT: Final = "storage policy"

router = APIRouter(tags=["storage_policy"])


def _policy_response(policy: StoragePolicy | None) -> Response:
    if policy is None:
        return success_response(None)
    return success_response(policy.to_document(), headers={"ETag": etag_of(policy.version)})


async def read_storage_policy(store: StoragePolicyStore, principal: Principal) -> Response:
    try:
        policy = await store.read(principal.tenant_id, uid=principal.uid)
    except StoreError as error:
        raise from_store_error(error, action="read", subject=SUBJECT) from None
    return _policy_response(policy)


async def write_storage_policy(
    request: Request, store: StoragePolicyStore, principal: Principal, max_body_bytes: int
) -> Response:
    body = await read_json_body(request, max_body_bytes)
    changes = validate_storage_policy_body(body)
    if_match = parse_if_match(request.headers.getlist("if-match"))
    write = store.replace if request.method == "PUT" else store.merge
    try:
        policy = await write(principal.tenant_id, changes, updated_by=principal.uid, if_match=if_match)
    except StoreError as error:
        raise from_store_error(error, action="write", subject=SUBJECT) from None
    return _policy_response(policy)


_SUCCESS: Final = {"model": StoragePolicyEnvelope, "headers": ETAG_HEADER}


@router.get(
    "/settings/storage_policy",
    summary="Read the tenant's storage policy",
    responses={200: _SUCCESS, **errors(*READ_ERRORS)},
    response_model=StoragePolicyEnvelope,
)
async def get_storage_policy(principal: CurrentPrincipal, store: StoragePolicyStoreDep) -> Response:
    return await read_storage_policy(store, principal)


@router.put(
    "/settings/storage_policy",
    summary="Replace the storage policy (omitted fields take the defaults)",
    responses={200: _SUCCESS, **errors(*WRITE_ERRORS, 412)},
    response_model=StoragePolicyEnvelope,
    openapi_extra=storage_policy_write_body(),
)
async def put_storage_policy(
    request: Request, principal: CurrentPrincipal, store: StoragePolicyStoreDep, settings: ApiSettingsDep
) -> Response:
    return await write_storage_policy(request, store, principal, settings.api_max_body_bytes)


@router.patch(
    "/settings/storage_policy",
    summary="Merge into the storage policy (or into the defaults when none is stored)",
    responses={200: _SUCCESS, **errors(*WRITE_ERRORS, 412)},
    response_model=StoragePolicyEnvelope,
    openapi_extra=storage_policy_write_body(),
)
async def patch_storage_policy(
    request: Request, principal: CurrentPrincipal, store: StoragePolicyStoreDep, settings: ApiSettingsDep
) -> Response:
    return await write_storage_policy(request, store, principal, settings.api_max_body_bytes)
