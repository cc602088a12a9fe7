"""Each tenant's storage policy in Supabase, over REST: supabase-py's async client calling the
migration's SQL functions through PostgREST RPC (``POST /rest/v1/rpc/<function>``).

Used when ``SUPABASE_DB_URL`` is unset and ``SUPABASE_URL``, ``SUPABASE_ANON_KEY`` and
``SUPABASE_JWT_SECRET`` are known. Least privilege: the store holds no service-role key. For each
call it mints a short-lived HS256 token with the project's JWT secret (``role: authenticated``, the
configured audience, the tenant in ``app_metadata.tenant_id``, the principal's uid as ``sub``) and
sends it as the bearer token, so PostgREST runs the call as ``authenticated`` with those claims:
row-level security and the functions' tenant and author rules apply exactly as on the SQL
transport. The anon key only passes the gateway (Kong wants an ``apikey``); it grants nothing.

The store hands supabase-py its own ``httpx.AsyncClient``: explicit connect/read timeouts, no
transport retries, and PostgREST's own retry switched off (it only retries GET/HEAD anyway; every
call here is a POST), so a dead Supabase costs one timeout, never a retry storm.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping
from typing import Final

import httpx
import jwt
from postgrest.exceptions import APIError
from supabase import AsyncClient, AsyncClientOptions, acreate_client

from botmox_api.model import (
    STORAGE_POLICY_SUBJECT,
    DataBackend,
    IfMatch,
    Readiness,
    StoragePolicy,
    StoragePolicyChanges,
    VersionConflict,
    query_failed,
)
from botmox_api.stores._supabase_rows import (
    MalformedRow,
    if_match_arguments,
    policy_from_row,
    request_claims,
    version_at_conflict,
)

VERSION_CONFLICT_CODE: Final = "BM412"
# Any well-formed tenant id works: the probe only proves that PostgREST answers, accepts the minted
# token and that the function exists (PostgREST says PGRST202 when it does not).
_READINESS_TENANT: Final = "botmox-readiness-probe"
# Long enough for one call and its clock skew, short enough to be useless if it leaks from a log.
DEFAULT_TOKEN_LIFETIME_S: Final = 60
ROLE: Final = "authenticated"


class _UnexpectedBody(Exception):
    """PostgREST answered 2xx with something other than an array of rows."""


class RestStoragePolicyStore:
    backend: DataBackend = "supabase"

    def __init__(
        self,
        supabase_url: str,
        anon_key: str,
        jwt_secret: str,
        *,
        jwt_audience: str = "authenticated",
        token_lifetime_s: int = DEFAULT_TOKEN_LIFETIME_S,
        timeout_s: float = 5.0,
        connect_timeout_s: float = 3.0,
        transport: httpx.AsyncBaseTransport | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._url = supabase_url
        self._anon_key = anon_key
        self._jwt_secret = jwt_secret
        self._jwt_audience = jwt_audience
        self._token_lifetime_s = token_lifetime_s
        self._clock = clock
        self._timeout_s = timeout_s
        self._http = httpx.AsyncClient(
            timeout=httpx.Timeout(timeout_s, connect=connect_timeout_s),
            transport=transport or httpx.AsyncHTTPTransport(retries=0),
            follow_redirects=False,
        )
        self._client: AsyncClient | None = None
        self._client_lock = asyncio.Lock()

    def _declared_tenant(self, tenant_id: str) -> str:
        """The tenant each token carries. A seam for the RLS tests, which declare another tenant
        on purpose; the application never overrides it."""
        return tenant_id

    def _token(self, tenant_id: str, uid: str | None) -> str:
        now = int(self._clock())
        claims = request_claims(self._declared_tenant(tenant_id), uid) | {
            "role": ROLE,
            "aud": self._jwt_audience,
            "iat": now,
            "exp": now + self._token_lifetime_s,
        }
        return jwt.encode(claims, self._jwt_secret, algorithm="HS256")

    async def _supabase(self) -> AsyncClient:
        # acreate_client is a coroutine but does no network I/O (it only reads the in-memory session).
        async with self._client_lock:
            if self._client is None:
                options = AsyncClientOptions(
                    httpx_client=self._http,
                    postgrest_client_retry=False,
                    auto_refresh_token=False,
                    persist_session=False,
                )
                self._client = await acreate_client(self._url, self._anon_key, options=options)
            return self._client

    async def _rpc(
        self, function: str, params: Mapping[str, object], tenant_id: str, uid: str | None
    ) -> list[Mapping[str, object]]:
        client = await self._supabase()
        call = client.rpc(function, dict(params))
        # The builder's headers are a copy made for this one request, so concurrent calls with
        # different principals never share a token.
        call.request.headers["Authorization"] = f"Bearer {self._token(tenant_id, uid)}"
        response = await call.execute()
        rows = response.data
        if not isinstance(rows, list) or not all(isinstance(row, dict) for row in rows):
            raise _UnexpectedBody
        return rows

    async def read(self, tenant_id: str, *, uid: str | None = None) -> StoragePolicy | None:
        try:
            rows = await self._rpc("storage_policy_read", {"p_tenant_id": tenant_id}, tenant_id, uid)
            return policy_from_row(rows[0]) if rows else None
        except Exception as error:
            raise query_failed("supabase", "read", STORAGE_POLICY_SUBJECT, self._reason(error)) from error

    async def replace(
        self,
        tenant_id: str,
        changes: StoragePolicyChanges,
        *,
        updated_by: str,
        if_match: IfMatch | None = None,
    ) -> StoragePolicy:
        return await self._write("storage_policy_replace", tenant_id, changes, updated_by, if_match)

    async def merge(
        self,
        tenant_id: str,
        changes: StoragePolicyChanges,
        *,
        updated_by: str,
        if_match: IfMatch | None = None,
    ) -> StoragePolicy:
        return await self._write("storage_policy_merge", tenant_id, changes, updated_by, if_match)

    async def _write(
        self,
        function: str,
        tenant_id: str,
        changes: StoragePolicyChanges,
        updated_by: str,
        if_match: IfMatch | None,
    ) -> StoragePolicy:
        versions, if_exists = if_match_arguments(if_match)
        # No p_updated_by: the database records the token's sub.
        params = {
            "p_tenant_id": tenant_id,
            "p_operational": changes.operational,
            "p_sync_enabled": changes.sync_enabled,
            "p_if_match": versions,
            "p_if_exists": if_exists,
        }
        try:
            rows = await self._rpc(function, params, tenant_id, updated_by)
            if not rows:
                raise _UnexpectedBody
            return policy_from_row(rows[0])
        except APIError as error:
            if error.code == VERSION_CONFLICT_CODE:
                current = await version_at_conflict(
                    lambda tenant: self.read(tenant, uid=updated_by), tenant_id, error.details
                )
                raise VersionConflict("supabase", current) from error
            raise query_failed("supabase", "write", STORAGE_POLICY_SUBJECT, self._reason(error)) from error
        except Exception as error:
            raise query_failed("supabase", "write", STORAGE_POLICY_SUBJECT, self._reason(error)) from error

    def _reason(self, error: BaseException) -> str:
        if isinstance(error, APIError):
            return f"PostgREST error {error.code or 'unknown'}: {error.message or 'no message'}"
        if isinstance(error, httpx.TimeoutException):
            return f"Supabase did not answer within {self._timeout_s:g} s"
        if isinstance(error, httpx.ConnectError):
            return "Supabase unreachable: connection failed"
        if isinstance(error, httpx.HTTPError):
            return f"Supabase request failed ({type(error).__name__})"
        if isinstance(error, _UnexpectedBody):
            return "Unexpected response body from PostgREST"
        if isinstance(error, MalformedRow):
            return f"Unexpected value in column {error}"
        return f"Unexpected error ({type(error).__name__})"

    async def check_ready(self) -> Readiness:
        try:
            await self._rpc(
                "storage_policy_read", {"p_tenant_id": _READINESS_TENANT}, _READINESS_TENANT, None
            )
        except Exception as error:
            return Readiness(False, self._reason(error))
        return Readiness(True)

    async def aclose(self) -> None:
        await self._http.aclose()
