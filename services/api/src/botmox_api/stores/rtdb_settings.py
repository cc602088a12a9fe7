"""Generic tenant settings in the Realtime Database (``tenants/{tenant_id}/settings/{path}``).

An object body is merged one level deep with one multi-location ``update()``: every child of the
body and ``updated_at`` are written in a single atomic PATCH, and a ``null`` child deletes that
child. RTDB applies each PATCH atomically, so concurrent writes of different children of one node
lose nothing without a transaction. Any other body replaces the node (``set``); ``null`` deletes it.

``read_tree`` returns the raw tree, ``storage_policy`` child included as stored (with its
``version``). The API composes the whole-tree answer by dropping that raw child and inserting
``StoragePolicy.to_document()`` from the storage-policy store, so the served document is the same
in both backends.
"""

from __future__ import annotations

from botmox_api.model import (
    SETTINGS_SUBJECT,
    Action,
    DataBackend,
    JsonObject,
    JsonValue,
    Readiness,
    StoreQueryFailed,
    is_rtdb_key,
    query_failed,
)
from botmox_api.stores._rtdb import RtdbTarget, settings_path
from botmox_api.stores._rtdb_rest import (
    DEFAULT_HTTP_TIMEOUT_S,
    DEFAULT_MAX_CONNECTIONS,
    RtdbRestClient,
    readiness_client,
    rtdb_reason,
)


class RtdbSettingsStore:
    backend: DataBackend = "rtdb"

    def __init__(
        self,
        target: RtdbTarget,
        *,
        http_timeout_s: float = DEFAULT_HTTP_TIMEOUT_S,
        max_connections: int = DEFAULT_MAX_CONNECTIONS,
    ) -> None:
        self._rtdb = RtdbRestClient(target, http_timeout_s=http_timeout_s, max_connections=max_connections)
        self._readiness = readiness_client(target, http_timeout_s=http_timeout_s)

    def _failed(self, action: Action, error: BaseException) -> StoreQueryFailed:
        reason = rtdb_reason(error, timeout_s=self._rtdb.http_timeout_s)
        return query_failed("rtdb", action, SETTINGS_SUBJECT, reason)

    async def read_tree(self, tenant_id: str) -> JsonObject:
        tree = await self.read(tenant_id, ())
        if tree is None:
            return {}
        if not isinstance(tree, dict):
            raise query_failed("rtdb", "read", SETTINGS_SUBJECT, "settings node is not an object")
        return tree

    async def read(self, tenant_id: str, path: tuple[str, ...]) -> JsonValue:
        node_path = settings_path(tenant_id, path)
        try:
            return await self._rtdb.get(node_path)
        except Exception as error:
            raise self._failed("read", error) from error

    async def write(
        self, tenant_id: str, path: tuple[str, ...], body: JsonValue, *, updated_at: int
    ) -> JsonValue:
        node_path = settings_path(tenant_id, path)
        if isinstance(body, dict):
            # A key with "/" would be read by RTDB as a deeper path and break the one-level merge.
            bad = next((key for key in body if not is_rtdb_key(key)), None)
            if bad is not None:
                raise query_failed("rtdb", "write", SETTINGS_SUBJECT, f"Invalid key: {bad!r}")

        try:
            if isinstance(body, dict):
                await self._rtdb.update(node_path, {**body, "updated_at": updated_at})
            elif body is None:
                await self._rtdb.delete(node_path)
            else:
                await self._rtdb.set(node_path, body)
            return await self._rtdb.get(node_path)
        except Exception as error:
            raise self._failed("write", error) from error

    async def check_ready(self) -> Readiness:
        return await self._readiness.check_ready()

    async def aclose(self) -> None:
        await self._readiness.aclose()
        await self._rtdb.aclose()
