"""The floor of ``make bench``: the least a server can do to answer the API's storage-policy calls.

A bare ASGI app (no framework, no token verification, no validation, no logging) run by the same
uvicorn as the API, one worker. ``GET`` and ``PATCH /api/v1/settings/storage_policy`` run the
API's own statements (``READ_SQL`` / ``MERGE_SQL`` of ``botmox_api.stores.supabase_sql``, with its
``claims_text``) through asyncpg, logging in as the API's role (``botmox_api``, so row-level
security applies) with the API's pool size and timeouts, and answer with the API's envelope and
``ETag``. A token is mapped to its tenant and user by a dict lookup in the file the bench writes
(``{token: [tenant_id, uid]}``); an unknown token is a 401.

What the floor leaves out on purpose, so that it stays a floor: asyncpg's reset of a connection
when it goes back to the pool (a round trip per request; nothing needs resetting, as the claims
are local to each statement's transaction), and any check of the body beyond reading the two
fields.

    FLOOR_DSN=postgresql://botmox_api:...@127.0.0.1:5432/db FLOOR_TENANTS=tenants.json \
        FLOOR_PORT=8001 python -m loadtests.reference.floor
"""

from __future__ import annotations

import json
import os
from collections.abc import Awaitable, Callable, Mapping, MutableMapping
from pathlib import Path
from typing import Any, Final

import asyncpg
import uvicorn

from botmox_api.stores.supabase_sql import MERGE_SQL, READ_SQL, claims_text

HOST_VARIABLE: Final = "FLOOR_HOST"
PORT_VARIABLE: Final = "FLOOR_PORT"
DSN_VARIABLE: Final = "FLOOR_DSN"
TENANTS_VARIABLE: Final = "FLOOR_TENANTS"
HEALTH_PATH: Final = "/health"
POLICY_PATH: Final = "/api/v1/settings/storage_policy"
# The API's pool (SqlStoragePolicyStore): at most 10 connections, 5 s statement and lock timeouts.
POOL_MIN_SIZE: Final = 1
POOL_MAX_SIZE: Final = 10
STATEMENT_TIMEOUT_MS: Final = 5000

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

_JSON_HEADERS: Final = [(b"content-type", b"application/json")]
_UNAUTHORIZED: Final = (
    b'{"success":false,"error":{"code":"UNAUTHORIZED","message":"Invalid or expired token"}}'
)
_NOT_FOUND: Final = b'{"success":false,"error":{"code":"NOT_FOUND","message":"Not found"}}'


def read_tenants(path: Path) -> dict[str, tuple[str, str]]:
    """``{token: (tenant_id, uid)}`` from the bench's file."""
    return {token: (tenant, uid) for token, (tenant, uid) in json.loads(path.read_text()).items()}


def _bearer(headers: list[tuple[bytes, bytes]]) -> str | None:
    for name, value in headers:
        if name == b"authorization" and value[:7].lower() == b"bearer ":
            return value[7:].decode("latin-1")
    return None


async def _read_body(receive: Receive) -> bytes:
    chunks = []
    while True:
        message = await receive()
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks)


async def _respond(send: Send, status: int, body: bytes, etag: str | None = None) -> None:
    headers = list(_JSON_HEADERS)
    if etag is not None:
        headers.append((b"etag", etag.encode()))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def _answer(row: Mapping[str, Any] | None) -> tuple[bytes, str | None]:
    """The API's envelope and ETag for a ``storage_policies`` row (``data: null`` when none)."""
    if row is None:
        return b'{"success":true,"data":null}', None
    document = {
        "secrets": "local-only",
        "operational": row["operational"],
        "sync": {"enabled": row["sync_enabled"]},
        "updated_at": row["updated_at_ms"],
        "updated_by": row["updated_by"],
    }
    body = json.dumps({"success": True, "data": document}, separators=(",", ":")).encode()
    return body, f'"{row["version"]}"'


async def _no_reset(connection: asyncpg.Connection) -> None:
    """Nothing to reset: every statement declares its claims for its own transaction."""


class Floor:
    """The ASGI app; the pool opens at lifespan start-up and closes at shutdown."""

    def __init__(self, dsn: str, tenants: Mapping[str, tuple[str, str]]) -> None:
        self._dsn = dsn
        self._tenants = dict(tenants)
        self._pool: asyncpg.Pool | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
        elif scope["type"] == "http":
            await self._http(scope, receive, send)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                self._pool = await asyncpg.create_pool(
                    self._dsn,
                    min_size=POOL_MIN_SIZE,
                    max_size=POOL_MAX_SIZE,
                    reset=_no_reset,
                    server_settings={
                        "application_name": "botmox-floor",
                        "statement_timeout": str(STATEMENT_TIMEOUT_MS),
                        "lock_timeout": str(STATEMENT_TIMEOUT_MS),
                    },
                )
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                if self._pool is not None:
                    await self._pool.close()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope["path"]
        if path == HEALTH_PATH:
            await _respond(send, 200, b'{"status":"ok"}')
            return
        if path != POLICY_PATH or self._pool is None:
            await _respond(send, 404, _NOT_FOUND)
            return
        principal = self._tenants.get(_bearer(scope["headers"]) or "")
        if principal is None:
            await _respond(send, 401, _UNAUTHORIZED)
            return
        tenant_id, uid = principal
        claims = claims_text(tenant_id, uid)
        if scope["method"] == "PATCH":
            changes = json.loads(await _read_body(receive))
            sync = changes.get("sync")
            row = await self._pool.fetchrow(
                MERGE_SQL,
                claims,
                tenant_id,
                changes.get("operational"),
                sync.get("enabled") if isinstance(sync, dict) else None,
                None,
                False,
            )
        else:
            row = await self._pool.fetchrow(READ_SQL, claims, tenant_id)
        body, etag = _answer(row)
        await _respond(send, 200, body, etag)


def main() -> None:
    app = Floor(os.environ[DSN_VARIABLE], read_tenants(Path(os.environ[TENANTS_VARIABLE])))
    # The API's uvicorn settings (botmox_api.__main__), one worker.
    uvicorn.run(
        app,
        host=os.environ.get(HOST_VARIABLE, "127.0.0.1"),
        port=int(os.environ.get(PORT_VARIABLE, "8001")),
        log_level="warning",
        access_log=False,
        proxy_headers=False,
        server_header=False,
        lifespan="on",
    )


if __name__ == "__main__":
    main()
