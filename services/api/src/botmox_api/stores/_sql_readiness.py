"""What "ready" means for the SQL transport: the migrations' table and functions exist, and the
role the API logs in as may use them. Checked in one statement over a connection of its own
(``ReadinessConnection``), never one of the pool's: readiness must not queue behind user traffic,
nor take a connection from it.

``botmox.request_subject`` stands for the second migration (caller identity): without it the
functions still want ``p_updated_by``, which the API no longer sends."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from typing import Any, Final

import psycopg
from psycopg.rows import dict_row

from botmox_api.model import Readiness

CHECK_SCHEMA: Final = """
select name, object is not null as present,
       coalesce(case when kind = 'table' then has_table_privilege(object, 'select')
                     else has_function_privilege(object, 'execute') end, false) as allowed
from (values
  (1, 'public.storage_policies', 'table', to_regclass('public.storage_policies')::oid),
  (2, 'public.storage_policy_read', 'function',
      to_regprocedure('public.storage_policy_read(text)')::oid),
  (3, 'public.storage_policy_replace', 'function',
      to_regprocedure('public.storage_policy_replace(text,text,text,boolean,bigint[],boolean)')::oid),
  (4, 'public.storage_policy_merge', 'function',
      to_regprocedure('public.storage_policy_merge(text,text,text,boolean,bigint[],boolean)')::oid),
  (5, 'botmox.request_subject', 'function', to_regprocedure('botmox.request_subject()')::oid)
) as objects(position, name, kind, object)
order by position
"""


def readiness_from_rows(rows: Sequence[dict[str, object]]) -> Readiness:
    missing = [str(row["name"]) for row in rows if row["present"] is not True]
    if missing:
        return Readiness(False, "Migration not applied: missing " + ", ".join(missing))
    denied = [str(row["name"]) for row in rows if row["allowed"] is not True]
    if denied:
        return Readiness(False, "The API's database role may not use " + ", ".join(denied))
    return Readiness(True)


class ReadinessConnectFailed(Exception):
    """No connection to the database could be opened for the check."""


class ReadinessConnection:
    """The one connection the readiness check runs on, opened on first use and reopened when the
    server dropped it. Checks take turns on it. It belongs to the event loop that first used it."""

    def __init__(self, conninfo: str, connect_kwargs: Mapping[str, Any]) -> None:
        self._conninfo = conninfo
        self._connect_kwargs = dict(connect_kwargs)
        self._lock = asyncio.Lock()
        self._conn: psycopg.AsyncConnection[dict[str, Any]] | None = None
        self._closed = False

    async def check_schema(self) -> list[dict[str, Any]]:
        """The rows of ``CHECK_SCHEMA``; raises ``ReadinessConnectFailed`` or a ``psycopg.Error``."""
        async with self._lock:
            if self._closed:
                raise psycopg.InterfaceError("the store is closed")
            conn = self._conn
            if conn is not None:
                try:
                    return await self._query(conn)
                except psycopg.OperationalError:
                    if not conn.broken:
                        raise
                    # The server restarted or dropped the connection since the last check: try once
                    # on a new one, as the pool does when its check finds a connection broken.
                    await self._drop()
            self._conn = await self._connect()
            return await self._query(self._conn)

    async def _connect(self) -> psycopg.AsyncConnection[dict[str, Any]]:
        try:
            return await psycopg.AsyncConnection.connect(
                self._conninfo, autocommit=True, row_factory=dict_row, **self._connect_kwargs
            )
        except psycopg.OperationalError as error:
            raise ReadinessConnectFailed from error

    async def _query(self, conn: psycopg.AsyncConnection[dict[str, Any]]) -> list[dict[str, Any]]:
        try:
            cursor = await conn.execute(CHECK_SCHEMA)
            return await cursor.fetchall()
        except asyncio.CancelledError:
            # A check cut short by its timeout leaves the connection mid-statement.
            await self._drop()
            raise

    async def _drop(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            await conn.close()

    async def aclose(self) -> None:
        async with self._lock:
            self._closed = True
            await self._drop()
