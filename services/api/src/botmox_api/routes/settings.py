"""``/api/v1/settings`` and ``/api/v1/settings/{path}``: the caller's tenant-scoped settings tree.

Generic paths live in the settings store (RTDB in both modes); ``storage_policy`` is dispatched to
``routes.storage_policy`` whatever spelling reached it. The whole tree is assembled from both stores,
so it shows ``storage_policy`` from wherever it lives.
"""

from __future__ import annotations

import asyncio
import time
from typing import Final

from fastapi import APIRouter, Request
from starlette.responses import Response

from botmox_api.backends import StoreSetLike
from botmox_api.deps import ApiSettingsDep, CurrentPrincipal, StoreSetDep
from botmox_api.envelope import success_response
from botmox_api.errors import MethodNotAllowed, from_store_error
from botmox_api.model import JsonObject, StoragePolicy, StoreError
from botmox_api.openapi_docs import GENERIC_WRITE_BODY, READ_ERRORS, WRITE_ERRORS, errors
from botmox_api.principal import Principal
from botmox_api.request_body import read_json_body
from botmox_api.routes.storage_policy import read_storage_policy, write_storage_policy
from botmox_api.schemas import SettingsNodeEnvelope, SettingsTreeEnvelope
from botmox_api.settings_body import validate_settings_body
from botmox_api.settings_path import STORAGE_POLICY, is_whole_tree, normalise_settings_path
from botmox_api.settings_path_convertor import CONVERTOR_NAME

SUBJECT: Final = "settings"
WHOLE_TREE_METHODS: Final = ("GET",)
PATH_METHODS: Final = ("GET", "PUT", "PATCH")

# The convertor also matches control characters, so they reach the path rules (400), not a 404.
PATH_ROUTE: Final = f"/settings/{{settings_path:{CONVERTOR_NAME}}}"

router = APIRouter(tags=["settings"])


async def _read_tree(stores: StoreSetLike, principal: Principal) -> Response:
    tree_result, policy_result = await asyncio.gather(
        stores.settings.read_tree(principal.tenant_id),
        stores.storage_policy.read(principal.tenant_id, uid=principal.uid),
        return_exceptions=True,
    )
    if isinstance(tree_result, StoreError):
        raise from_store_error(tree_result, action="read", subject=SUBJECT)
    if isinstance(policy_result, StoreError):
        raise from_store_error(policy_result, action="read", subject="storage policy")
    for result in (tree_result, policy_result):
        if isinstance(result, BaseException):
            raise result
    assert isinstance(tree_result, dict)
    # The raw node is never served: in rtdb mode it carries the store's "version", in supabase
    # mode it is a stale leftover. The policy store's document replaces it.
    tree: JsonObject = {key: value for key, value in tree_result.items() if key != STORAGE_POLICY}
    if isinstance(policy_result, StoragePolicy):
        tree[STORAGE_POLICY] = policy_result.to_document()
    return success_response(tree)


@router.get(
    "/settings",
    summary="Read the caller's whole settings tree",
    response_model=SettingsTreeEnvelope,
    responses=errors(*READ_ERRORS),
)
async def get_settings_tree(principal: CurrentPrincipal, stores: StoreSetDep) -> Response:
    return await _read_tree(stores, principal)


async def _settings_path(
    request: Request, settings_path: str, principal: Principal, stores: StoreSetLike, max_body_bytes: int
) -> Response:
    method = request.method
    if method != "GET" and is_whole_tree(settings_path):
        raise MethodNotAllowed(method, WHOLE_TREE_METHODS)
    path = normalise_settings_path(settings_path)
    if not path:
        return await _read_tree(stores, principal)
    if path == (STORAGE_POLICY,):
        if method == "GET":
            return await read_storage_policy(stores.storage_policy, principal)
        return await write_storage_policy(request, stores.storage_policy, principal, max_body_bytes)
    if method == "GET":
        try:
            node = await stores.settings.read(principal.tenant_id, path)
        except StoreError as error:
            raise from_store_error(error, action="read", subject=SUBJECT) from None
        return success_response(node)
    body = validate_settings_body(path, await read_json_body(request, max_body_bytes))
    try:
        node = await stores.settings.write(
            principal.tenant_id, path, body, updated_at=int(time.time() * 1000)
        )
    except StoreError as error:
        raise from_store_error(error, action="write", subject=SUBJECT) from None
    return success_response(node)


_PATH_DESCRIPTION: Final = (
    "Slash-separated path below the tenant's settings; one leading `settings` segment is dropped. "
    "`storage_policy` is served as one document (see its own operation)."
)


@router.get(
    PATH_ROUTE,
    summary="Read the node at a settings path",
    description=_PATH_DESCRIPTION,
    response_model=SettingsNodeEnvelope,
    responses=errors(*READ_ERRORS),
)
async def get_settings_path(
    request: Request,
    settings_path: str,
    principal: CurrentPrincipal,
    stores: StoreSetDep,
    settings: ApiSettingsDep,
) -> Response:
    return await _settings_path(request, settings_path, principal, stores, settings.api_max_body_bytes)


@router.put(
    PATH_ROUTE,
    summary="Write the node at a settings path (object bodies merge one level deep)",
    description=_PATH_DESCRIPTION,
    response_model=SettingsNodeEnvelope,
    responses=errors(*WRITE_ERRORS, 412),  # 412: storage_policy reached by another spelling
    openapi_extra=GENERIC_WRITE_BODY,
)
async def put_settings_path(
    request: Request,
    settings_path: str,
    principal: CurrentPrincipal,
    stores: StoreSetDep,
    settings: ApiSettingsDep,
) -> Response:
    return await _settings_path(request, settings_path, principal, stores, settings.api_max_body_bytes)


@router.patch(
    PATH_ROUTE,
    summary="Write the node at a settings path (same semantics as PUT)",
    description=_PATH_DESCRIPTION,
    response_model=SettingsNodeEnvelope,
    responses=errors(*WRITE_ERRORS, 412),  # 412: storage_policy reached by another spelling
    openapi_extra=GENERIC_WRITE_BODY,
)
async def patch_settings_path(
    request: Request,
    settings_path: str,
    principal: CurrentPrincipal,
    stores: StoreSetDep,
    settings: ApiSettingsDep,
) -> Response:
    return await _settings_path(request, settings_path, principal, stores, settings.api_max_body_bytes)
