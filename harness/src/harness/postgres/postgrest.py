"""A PostgREST stand-in for RPC calls, answering from a real PostgreSQL (the harness's fixture).

PostgREST (and Kong in front of it) cannot run here. This stand-in is an ``httpx`` transport that
does for ``POST /rest/v1/rpc/<function>`` what they do, following PostgREST's documented rules, so
the API's REST transport can be tested against the real migration instead of hand-written answers:

- the gateway: the ``apikey`` header must be the project's anon key (401 otherwise);
- authentication: the bearer token is verified as PostgREST does (HS256 with the JWT secret, ``exp``,
  the configured ``aud``); the transaction then runs ``SET LOCAL ROLE <role claim>`` and
  ``request.jwt.claims`` holds the token's claims (401 ``PGRST301``/``PGRST303`` when it fails);
- function resolution by name and argument names, in schema ``public`` (404 ``PGRST202``);
- arguments converted with ``json_to_record`` and the body built with ``json_agg`` like PostgREST's own
  query, so types (``bigint[]``, ``boolean``, timestamps) come back as PostgREST would render them;
- errors as ``{"code", "details", "hint", "message"}`` with PostgREST's SQLSTATE -> HTTP status table.

It is a stand-in, not PostgREST: only the RPC path, one schema, no ``Prefer`` handling, no
``request.headers``/``request.method`` settings. The recorded exchanges of the REST transport are
checked against it (``services/api/tests/stores/test_supabase_rest_recorded.py``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Final

import httpx
import jwt
import psycopg
from psycopg import sql

RPC_PREFIX: Final = "/rest/v1/rpc/"
SCHEMA: Final = "public"
# The roles an authenticator may switch to on a Supabase project.
SWITCHABLE_ROLES: Final = frozenset({"anon", "authenticated", "service_role"})
_JSON: Final = {"content-type": "application/json; charset=utf-8"}

# PostgREST's documented mapping (docs.postgrest.org, references/errors, "HTTP Status Codes"):
# exact codes first, then classes; anything else is 400.
_STATUS_BY_SQLSTATE: Final = {
    "23503": 409,
    "23505": 409,
    "25006": 405,
    "42883": 404,
    "42P01": 404,
    "42P17": 500,
    "53400": 500,
    "P0001": 400,
}
_STATUS_BY_CLASS: Final = {
    "08": 503,
    "09": 500,
    "0L": 403,
    "0P": 403,
    "25": 500,
    "28": 403,
    "2D": 500,
    "38": 500,
    "39": 500,
    "3B": 500,
    "40": 500,
    "53": 503,
    "54": 500,
    "55": 500,
    "57": 500,
    "58": 500,
    "F0": 500,
    "HV": 500,
    "P0": 500,
    "XX": 500,
}


def postgrest_status(sqlstate: str, *, authenticated: bool) -> int:
    """The HTTP status PostgREST answers for an error with this SQLSTATE."""
    if sqlstate == "42501":
        return 403 if authenticated else 401
    if sqlstate in _STATUS_BY_SQLSTATE:
        return _STATUS_BY_SQLSTATE[sqlstate]
    return _STATUS_BY_CLASS.get(sqlstate[:2], 400)


def _error(
    status: int, code: str, message: str, details: str | None = None, hint: str | None = None
) -> httpx.Response:
    body = {"code": code, "details": details, "hint": hint, "message": message}
    return httpx.Response(status, headers=_JSON, json=body)


class PostgrestStandIn:
    """``httpx.MockTransport(PostgrestStandIn(...))``: answers RPC calls from ``dsn``'s database.

    ``dsn`` must be able to ``SET ROLE`` to the token's role (the fixture's admin DSN can), as
    PostgREST's ``authenticator`` can.
    """

    def __init__(
        self, dsn: str, *, anon_key: str, jwt_secret: str, jwt_audience: str = "authenticated"
    ) -> None:
        self._dsn = dsn
        self._anon_key = anon_key
        self._jwt_secret = jwt_secret
        self._jwt_audience = jwt_audience

    async def __call__(self, request: httpx.Request) -> httpx.Response:
        if request.headers.get("apikey") != self._anon_key:
            # Kong's key-auth answer, before PostgREST sees anything.
            return httpx.Response(401, headers=_JSON, json={"message": "Invalid API key"})
        claims = self._claims(request.headers.get("authorization", ""))
        if isinstance(claims, httpx.Response):
            return claims
        if request.method != "POST" or not request.url.path.startswith(RPC_PREFIX):
            return _error(404, "PGRST125", f"Invalid path specified in request URL: {request.url.path}")
        function = request.url.path.removeprefix(RPC_PREFIX)
        try:
            arguments = json.loads(request.content or b"{}")
        except json.JSONDecodeError:
            return _error(400, "PGRST102", "Empty or invalid json")
        if not isinstance(arguments, dict):
            return _error(400, "PGRST102", "Empty or invalid json")
        return await self._call(function, arguments, claims)

    def _claims(self, authorization: str) -> dict[str, object] | httpx.Response:
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token:
            return {"role": "anon"}
        try:
            claims: dict[str, object] = jwt.decode(
                token,
                self._jwt_secret,
                algorithms=["HS256"],
                audience=self._jwt_audience,
                options={"require": ["exp"]},
            )
        except jwt.ExpiredSignatureError:
            return _error(401, "PGRST303", "JWT expired")
        except jwt.PyJWTError as error:
            return _error(401, "PGRST301", f"JWT could not be decoded: {type(error).__name__}")
        if claims.get("role", "anon") not in SWITCHABLE_ROLES:
            return _error(401, "PGRST301", f'role "{claims.get("role")}" does not exist')
        return claims

    async def _call(
        self, function: str, arguments: Mapping[str, object], claims: Mapping[str, object]
    ) -> httpx.Response:
        role = str(claims.get("role", "anon"))
        async with await psycopg.AsyncConnection.connect(self._dsn, autocommit=True) as connection:
            signature = await self._signature(connection, function, set(arguments))
            if signature is None:
                names = ", ".join(sorted(arguments))
                return _error(
                    404,
                    "PGRST202",
                    f"Could not find the function {SCHEMA}.{function}({names}) in the schema cache",
                )
            columns = sql.SQL(", ").join(
                sql.SQL("{} {}").format(
                    sql.Identifier(name), sql.SQL(type_name)
                )  # type names from the catalog
                for name, type_name in signature
                if name in arguments
            )
            call_arguments = sql.SQL(", ").join(
                sql.SQL("{} := _args.{}").format(sql.Identifier(name), sql.Identifier(name))
                for name, _ in signature
                if name in arguments
            )
            query = sql.SQL(
                "select coalesce(json_agg(_pgrst_t), '[]')::text from ("
                " select _fn.* from json_to_record(%s::json) as _args({columns}),"
                " lateral {schema}.{function}({call_arguments}) as _fn) as _pgrst_t"
            ).format(
                columns=columns if arguments else sql.SQL("_none text"),
                schema=sql.Identifier(SCHEMA),
                function=sql.Identifier(function),
                call_arguments=call_arguments,
            )
            try:
                async with connection.transaction():
                    await connection.execute(sql.SQL("set local role {}").format(sql.Identifier(role)))
                    await connection.execute(
                        "select set_config('request.jwt.claims', %s, true)", (json.dumps(dict(claims)),)
                    )
                    cursor = await connection.execute(query, (json.dumps(dict(arguments)),))
                    row = await cursor.fetchone()
            except psycopg.Error as error:
                sqlstate = error.sqlstate or "XX000"
                return _error(
                    postgrest_status(sqlstate, authenticated=role != "anon"),
                    sqlstate,
                    error.diag.message_primary or str(error),
                    error.diag.message_detail,
                    error.diag.message_hint,
                )
        assert row is not None
        return httpx.Response(200, headers=_JSON, content=str(row[0]).encode())

    @staticmethod
    async def _signature(
        connection: psycopg.AsyncConnection[tuple[object, ...]], function: str, given: set[str]
    ) -> list[tuple[str, str]] | None:
        """The input arguments (name, type) of the overload whose names fit the JSON keys: every key is
        an argument and every argument without a default is given (PostgREST's resolution)."""
        cursor = await connection.execute(
            # proargtypes is an oidvector (subscripts from 0), proargnames a text[] (from 1).
            "select array(select p.proargnames[i + 1]"
            "             from generate_subscripts(p.proargtypes, 1) as i order by i),"
            " array(select format_type(p.proargtypes[i], null)"
            "       from generate_subscripts(p.proargtypes, 1) as i order by i),"
            " p.pronargs - p.pronargdefaults"
            " from pg_catalog.pg_proc p join pg_catalog.pg_namespace n on n.oid = p.pronamespace"
            " where n.nspname = %s and p.proname = %s",
            (SCHEMA, function),
        )
        for names, types, required in await cursor.fetchall():
            assert isinstance(names, list)
            assert isinstance(types, list)
            assert isinstance(required, int)
            arguments = [(str(name), str(type_name)) for name, type_name in zip(names, types, strict=True)]
            argument_names = {name for name, _ in arguments}
            if given <= argument_names and {name for name, _ in arguments[:required]} <= given:
                return arguments
        return None
