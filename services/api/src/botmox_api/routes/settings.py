"""``/api/v1/settings``, ``/api/v1/settings/storage_policy`` and ``/api/v1/settings/{path}``: the
caller's tenant-scoped settings tree.

Generic paths live in the settings store (RTDB in both modes). ``storage_policy`` is one document per
tenant, versioned and served with an ETag; it is reached by its own routes and from the generic
routes when a path normalises to it (``/settings/settings/storage_policy``), so both spellings
behave identically. The whole tree is assembled from both stores, so it shows ``storage_policy``
from wherever it lives. Which methods a settings path is served with (the 405 ``Allow``) is here too.

The router is built by ``build_router`` once the app factory has registered the settings path
convertor (``settings_path.register_convertor``).
"""

from __future__ import annotations

import asyncio
import time
from typing import Final

from fastapi import APIRouter, Request
from starlette.responses import Response

from botmox_api.auth import Principal
from botmox_api.deps import (
    ApiSettingsDep,
    CurrentPrincipal,
    ShadowReadsDep,
    StoragePolicyStoreDep,
    StoreSetDep,
)
from botmox_api.envelope import success_response
from botmox_api.errors import ApiError, MethodNotAllowed, from_store_error
from botmox_api.model import (
    SETTINGS_SUBJECT,
    STORAGE_POLICY_SUBJECT,
    JsonObject,
    StoragePolicy,
    StoreError,
)
from botmox_api.openapi import (
    ETAG_HEADER,
    GENERIC_WRITE_BODY,
    READ_ERRORS,
    WRITE_ERRORS,
    SettingsNodeEnvelope,
    SettingsTreeEnvelope,
    StoragePolicyEnvelope,
    errors,
    storage_policy_write_body,
)
from botmox_api.request_body import (
    etag_of,
    parse_if_match,
    read_json_body,
    validate_settings_body,
    validate_storage_policy_body,
)
from botmox_api.settings_path import (
    STORAGE_POLICY,
    SettingsPathConvertor,
    is_whole_tree,
    normalise_settings_path,
)
from botmox_api.shadow_reads import ShadowReads
from botmox_api.stores.protocols import StoragePolicyStore, StoreSet

TREE_ROUTE: Final = "/settings"
STORAGE_POLICY_ROUTE: Final = f"{TREE_ROUTE}/{STORAGE_POLICY}"
# The convertor also matches control characters, so they reach the path rules (400), not a 404.
PATH_ROUTE: Final = f"{TREE_ROUTE}/{{settings_path:{SettingsPathConvertor.name}}}"

WHOLE_TREE_METHODS: Final = ("GET",)
PATH_METHODS: Final = ("GET", "PUT", "PATCH")


def allowed_methods(route_path: str) -> tuple[str, ...] | None:
    """The methods a path (below the API prefix) is served with, for a 405's ``Allow``; ``None``
    when it is no settings path. The whole tree is read-only whatever spelling reaches it."""
    if route_path == TREE_ROUTE:
        return WHOLE_TREE_METHODS
    if route_path.startswith(TREE_ROUTE + "/"):
        return WHOLE_TREE_METHODS if is_whole_tree(route_path[len(TREE_ROUTE) + 1 :]) else PATH_METHODS
    return None


# The storage policy, for its own routes, the generic routes and the whole tree.


async def _read_policy(
    store: StoragePolicyStore, principal: Principal, shadow: ShadowReads | None
) -> StoragePolicy | None:
    """Every read of the policy that is served (its own routes, the other spellings, the whole tree)
    comes through here, so with shadow reads on each answer is offered to them (never awaited)."""
    try:
        policy = await store.read(principal.tenant_id, uid=principal.uid)
    except StoreError as error:
        raise from_store_error(error, action="read", subject=STORAGE_POLICY_SUBJECT) from None
    if shadow is not None:
        shadow.offer(principal.tenant_id, policy)
    return policy


def _policy_response(policy: StoragePolicy | None) -> Response:
    if policy is None:
        return success_response(None)
    return success_response(policy.to_document(), headers={"ETag": etag_of(policy.version)})


async def read_storage_policy(
    store: StoragePolicyStore, principal: Principal, shadow: ShadowReads | None
) -> Response:
    return _policy_response(await _read_policy(store, principal, shadow))


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
        raise from_store_error(error, action="write", subject=STORAGE_POLICY_SUBJECT) from None
    return _policy_response(policy)


async def get_storage_policy(
    principal: CurrentPrincipal, store: StoragePolicyStoreDep, shadow: ShadowReadsDep
) -> Response:
    return await read_storage_policy(store, principal, shadow)


async def put_storage_policy(
    request: Request, principal: CurrentPrincipal, store: StoragePolicyStoreDep, settings: ApiSettingsDep
) -> Response:
    return await write_storage_policy(request, store, principal, settings.api_max_body_bytes)


async def patch_storage_policy(
    request: Request, principal: CurrentPrincipal, store: StoragePolicyStoreDep, settings: ApiSettingsDep
) -> Response:
    return await write_storage_policy(request, store, principal, settings.api_max_body_bytes)


# The whole tree and generic paths.


async def _read_tree(stores: StoreSet, principal: Principal, shadow: ShadowReads | None) -> Response:
    tree_result, policy_result = await asyncio.gather(
        stores.settings.read_tree(principal.tenant_id),
        _read_policy(stores.storage_policy, principal, shadow),
        return_exceptions=True,
    )
    if isinstance(tree_result, StoreError):
        raise from_store_error(tree_result, action="read", subject=SETTINGS_SUBJECT)
    if isinstance(policy_result, ApiError):
        raise policy_result
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


async def get_settings_tree(
    principal: CurrentPrincipal, stores: StoreSetDep, shadow: ShadowReadsDep
) -> Response:
    return await _read_tree(stores, principal, shadow)


async def _settings_path(
    request: Request,
    settings_path: str,
    principal: Principal,
    stores: StoreSet,
    shadow: ShadowReads | None,
    max_body_bytes: int,
) -> Response:
    method = request.method
    if method != "GET" and is_whole_tree(settings_path):
        raise MethodNotAllowed(method, WHOLE_TREE_METHODS)
    path = normalise_settings_path(settings_path)
    if not path:
        return await _read_tree(stores, principal, shadow)
    if path == (STORAGE_POLICY,):
        if method == "GET":
            return await read_storage_policy(stores.storage_policy, principal, shadow)
        return await write_storage_policy(request, stores.storage_policy, principal, max_body_bytes)
    if method == "GET":
        try:
            node = await stores.settings.read(principal.tenant_id, path)
        except StoreError as error:
            raise from_store_error(error, action="read", subject=SETTINGS_SUBJECT) from None
        return success_response(node)
    body = validate_settings_body(path, await read_json_body(request, max_body_bytes))
    try:
        node = await stores.settings.write(
            principal.tenant_id, path, body, updated_at=int(time.time() * 1000)
        )
    except StoreError as error:
        raise from_store_error(error, action="write", subject=SETTINGS_SUBJECT) from None
    return success_response(node)


async def get_settings_path(
    request: Request,
    settings_path: str,
    principal: CurrentPrincipal,
    stores: StoreSetDep,
    shadow: ShadowReadsDep,
    settings: ApiSettingsDep,
) -> Response:
    return await _settings_path(
        request, settings_path, principal, stores, shadow, settings.api_max_body_bytes
    )


async def put_settings_path(
    request: Request,
    settings_path: str,
    principal: CurrentPrincipal,
    stores: StoreSetDep,
    settings: ApiSettingsDep,
) -> Response:
    # A write reads nothing to shadow: the other backend is never written.
    return await _settings_path(request, settings_path, principal, stores, None, settings.api_max_body_bytes)


async def patch_settings_path(
    request: Request,
    settings_path: str,
    principal: CurrentPrincipal,
    stores: StoreSetDep,
    settings: ApiSettingsDep,
) -> Response:
    # A write reads nothing to shadow: the other backend is never written.
    return await _settings_path(request, settings_path, principal, stores, None, settings.api_max_body_bytes)


_POLICY_SUCCESS: Final = {"model": StoragePolicyEnvelope, "headers": ETAG_HEADER}
_PATH_DESCRIPTION: Final = (
    "Slash-separated path below the tenant's settings; one leading `settings` segment is dropped. "
    "`storage_policy` is served as one document (see its own operation)."
)


def build_router() -> APIRouter:
    """The settings routes, ``storage_policy``'s before the generic path that would also match it."""
    router = APIRouter()
    policy_errors = errors(*WRITE_ERRORS, 412)
    router.get(
        STORAGE_POLICY_ROUTE,
        tags=["storage_policy"],
        summary="Read the tenant's storage policy",
        responses={200: _POLICY_SUCCESS, **errors(*READ_ERRORS)},
        response_model=StoragePolicyEnvelope,
    )(get_storage_policy)
    router.put(
        STORAGE_POLICY_ROUTE,
        tags=["storage_policy"],
        summary="Replace the storage policy (omitted fields take the defaults)",
        responses={200: _POLICY_SUCCESS, **policy_errors},
        response_model=StoragePolicyEnvelope,
        openapi_extra=storage_policy_write_body(),
    )(put_storage_policy)
    router.patch(
        STORAGE_POLICY_ROUTE,
        tags=["storage_policy"],
        summary="Merge into the storage policy (or into the defaults when none is stored)",
        responses={200: _POLICY_SUCCESS, **policy_errors},
        response_model=StoragePolicyEnvelope,
        openapi_extra=storage_policy_write_body(),
    )(patch_storage_policy)
    router.get(
        TREE_ROUTE,
        tags=["settings"],
        summary="Read the caller's whole settings tree",
        response_model=SettingsTreeEnvelope,
        responses=errors(*READ_ERRORS),
    )(get_settings_tree)
    router.get(
        PATH_ROUTE,
        tags=["settings"],
        summary="Read the node at a settings path",
        description=_PATH_DESCRIPTION,
        response_model=SettingsNodeEnvelope,
        responses=errors(*READ_ERRORS),
    )(get_settings_path)
    path_errors = errors(*WRITE_ERRORS, 412)  # 412: storage_policy reached by another spelling
    router.put(
        PATH_ROUTE,
        tags=["settings"],
        summary="Write the node at a settings path (object bodies merge one level deep)",
        description=_PATH_DESCRIPTION,
        response_model=SettingsNodeEnvelope,
        responses=path_errors,
        openapi_extra=GENERIC_WRITE_BODY,
    )(put_settings_path)
    router.patch(
        PATH_ROUTE,
        tags=["settings"],
        summary="Write the node at a settings path (same semantics as PUT)",
        description=_PATH_DESCRIPTION,
        response_model=SettingsNodeEnvelope,
        responses=path_errors,
        openapi_extra=GENERIC_WRITE_BODY,
    )(patch_settings_path)
    return router
