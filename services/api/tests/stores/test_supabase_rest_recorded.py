"""The REST transport against recorded PostgREST exchanges (``recordings/*.json``), plus a real
timeout and a real refused connection on 127.0.0.1.

PostgREST cannot run here; the recordings follow its documented RPC shapes: ``POST
/rest/v1/rpc/<function>`` with the arguments as a JSON object, 200 with an array of rows, errors as
``{"code", "details", "hint", "message"}`` (custom SQLSTATEs such as BM412 come back as 400). The
replay asserts every request the store sends: method, path, body, the anon key as ``apikey`` and a
bearer token minted for the call (HS256 with the JWT secret; its claims are in the recording). The
recorded database errors are checked against the real migration through the harness's PostgREST
stand-in (``test_recorded_database_errors_are_what_postgresql_raises``).
"""

from __future__ import annotations

import asyncio
import json
import socket
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import jwt
import psycopg
import pytest

from botmox_api.model import IfMatch, StoragePolicy, StoragePolicyChanges, StoreQueryFailed, VersionConflict
from botmox_api.stores.supabase_rest import RestStoragePolicyStore
from harness.postgres.migrated import PgDatabase
from harness.postgres.postgrest import PostgrestStandIn

RECORDINGS = Path(__file__).parent / "recordings"
SUPABASE_URL = "http://supabase.test"
ANON_KEY = "anon-key-for-tests"
JWT_SECRET = "jwt-secret-for-the-rest-transport-tests"
AUDIENCE = "authenticated"
TENANT = "acme"
UID = "uid-42"


def _minted_claims(request: httpx.Request) -> dict[str, Any]:
    """The claims of the request's bearer token, verified as PostgREST verifies them."""
    scheme, _, token = request.headers["authorization"].partition(" ")
    assert scheme == "Bearer"
    assert jwt.get_unverified_header(token)["alg"] == "HS256"
    claims: dict[str, Any] = jwt.decode(token, JWT_SECRET, algorithms=["HS256"], audience=AUDIENCE)
    return claims


class Replay:
    """An httpx transport that answers from a recording and checks each request against it."""

    def __init__(self, name: str) -> None:
        recording = json.loads((RECORDINGS / f"{name}.json").read_text())
        self.exchanges: list[dict[str, Any]] = recording["exchanges"]
        self.sent: list[httpx.Request] = []

    def handle(self, request: httpx.Request) -> httpx.Response:
        assert len(self.sent) < len(self.exchanges), f"unexpected extra request {request.url}"
        expected = self.exchanges[len(self.sent)]["request"]
        answer = self.exchanges[len(self.sent)]["response"]
        self.sent.append(request)
        assert request.method == expected["method"]
        assert request.url.path == expected["path"]
        assert request.url.host == "supabase.test"
        assert request.headers["apikey"] == ANON_KEY
        assert request.headers["content-type"] == "application/json"
        assert json.loads(request.content) == expected["json"]
        claims = _minted_claims(request)
        issued_at, expires = claims.pop("iat"), claims.pop("exp")
        assert claims == expected["claims"]
        assert expires - issued_at == 60
        assert abs(issued_at - time.time()) < 30
        if "json" in answer:
            return httpx.Response(answer["status"], headers=answer["headers"], json=answer["json"])
        return httpx.Response(answer["status"], headers=answer["headers"], text=answer["text"])

    def assert_done(self) -> None:
        assert len(self.sent) == len(self.exchanges)


def rest_store(url: str = SUPABASE_URL, **options: Any) -> RestStoragePolicyStore:
    return RestStoragePolicyStore(url, ANON_KEY, JWT_SECRET, jwt_audience=AUDIENCE, **options)


class MisdeclaringRestStore(RestStoragePolicyStore):
    """Mints tokens for one tenant while passing another to the functions: the application bug
    that the database must refuse."""

    def _declared_tenant(self, tenant_id: str) -> str:
        return "tenant-b"


@pytest.fixture
async def replay(request: pytest.FixtureRequest) -> AsyncIterator[tuple[RestStoragePolicyStore, Replay]]:
    recorded = Replay(request.param)
    store_class = MisdeclaringRestStore if request.param == "merge_rls_refused" else RestStoragePolicyStore
    store = store_class(
        SUPABASE_URL,
        ANON_KEY,
        JWT_SECRET,
        jwt_audience=AUDIENCE,
        transport=httpx.MockTransport(recorded.handle),
    )
    yield store, recorded
    await store.aclose()
    recorded.assert_done()


def _parametrize(name: str) -> pytest.MarkDecorator:
    return pytest.mark.parametrize("replay", [name], indirect=True)


@_parametrize("read_nothing_stored")
async def test_read_nothing_stored(replay: tuple[RestStoragePolicyStore, Replay]) -> None:
    store, _ = replay
    assert await store.read(TENANT, uid=UID) is None


@_parametrize("read_row")
async def test_read_row(replay: tuple[RestStoragePolicyStore, Replay]) -> None:
    store, _ = replay
    assert await store.read(TENANT, uid=UID) == StoragePolicy(
        operational="local", sync_enabled=True, updated_at=1764064800123, updated_by=UID, version=4
    )


@_parametrize("replace_defaults")
async def test_replace_sends_nulls_for_omitted_fields(replay: tuple[RestStoragePolicyStore, Replay]) -> None:
    store, _ = replay
    written = await store.replace(TENANT, StoragePolicyChanges(), updated_by=UID)
    assert (written.operational, written.sync_enabled, written.version) == ("cloud", False, 1)


@_parametrize("merge_if_match_list")
async def test_merge_sends_if_match_versions(replay: tuple[RestStoragePolicyStore, Replay]) -> None:
    store, _ = replay
    written = await store.merge(
        TENANT,
        StoragePolicyChanges(operational="local", sync_enabled=True),
        updated_by=UID,
        if_match=IfMatch(versions=frozenset({3, 1})),
    )
    assert written.version == 4


@_parametrize("merge_if_match_star")
async def test_merge_sends_star_as_if_exists(replay: tuple[RestStoragePolicyStore, Replay]) -> None:
    store, _ = replay
    written = await store.merge(
        TENANT,
        StoragePolicyChanges(sync_enabled=True),
        updated_by=UID,
        if_match=IfMatch(any_version=True),
    )
    assert written.version == 4


@_parametrize("merge_version_conflict")
async def test_bm412_is_a_version_conflict_with_the_current_version(
    replay: tuple[RestStoragePolicyStore, Replay],
) -> None:
    store, _ = replay
    with pytest.raises(VersionConflict) as raised:
        await store.merge(
            TENANT,
            StoragePolicyChanges(operational="local"),
            updated_by=UID,
            if_match=IfMatch(versions=frozenset({2})),
        )
    assert (raised.value.backend, raised.value.current_version) == ("supabase", 4)


@_parametrize("merge_version_conflict_no_detail")
async def test_bm412_without_detail_reads_the_current_version(
    replay: tuple[RestStoragePolicyStore, Replay],
) -> None:
    store, _ = replay
    with pytest.raises(VersionConflict) as raised:
        await store.merge(
            TENANT,
            StoragePolicyChanges(operational="local"),
            updated_by=UID,
            if_match=IfMatch(versions=frozenset({2})),
        )
    assert raised.value.current_version == 4


@_parametrize("replace_version_conflict_nothing_stored")
async def test_bm412_on_nothing_stored(replay: tuple[RestStoragePolicyStore, Replay]) -> None:
    store, _ = replay
    with pytest.raises(VersionConflict) as raised:
        await store.replace(
            TENANT,
            StoragePolicyChanges(sync_enabled=True),
            updated_by=UID,
            if_match=IfMatch(any_version=True),
        )
    assert raised.value.current_version is None


@_parametrize("replace_function_missing")
async def test_postgrest_error_is_query_failed_with_its_message(
    replay: tuple[RestStoragePolicyStore, Replay],
) -> None:
    store, _ = replay
    with pytest.raises(StoreQueryFailed) as raised:
        await store.replace(TENANT, StoragePolicyChanges(), updated_by=UID)
    assert raised.value.backend == "supabase"
    assert raised.value.message == "Failed to write storage policy to Supabase"
    assert raised.value.details["reason"] == (
        "PostgREST error PGRST202: Could not find the function public.storage_policy_replace(p_if_exists,"
        " p_if_match, p_operational, p_sync_enabled, p_tenant_id) in the schema cache"
    )


@_parametrize("merge_rls_refused")
async def test_a_write_for_another_tenant_than_the_token_is_refused(
    replay: tuple[RestStoragePolicyStore, Replay],
) -> None:
    store, _ = replay
    with pytest.raises(StoreQueryFailed) as raised:
        await store.merge(TENANT, StoragePolicyChanges(sync_enabled=True), updated_by=UID)
    assert raised.value.details["reason"] == "PostgREST error 42501: storage policy of another tenant"


def _seed(database: PgDatabase, tenant: str, version: int) -> None:
    """``tenant``'s row at ``version`` (nothing stored for 0), written as the API would."""
    with psycopg.connect(database.admin_dsn) as connection:
        claims = json.dumps({"sub": "seed", "app_metadata": {"tenant_id": tenant}})
        connection.execute("select set_config('request.jwt.claims', %s, true)", (claims,))
        for _ in range(version):
            connection.execute("select public.storage_policy_merge(%s)", (tenant,))


@pytest.mark.parametrize(
    ("name", "stored_version"),
    [("merge_rls_refused", 0), ("merge_version_conflict", 4), ("replace_version_conflict_nothing_stored", 0)],
)
async def test_recorded_database_errors_are_what_postgresql_raises(
    pg_database: PgDatabase, name: str, stored_version: int
) -> None:
    """Replays the recorded request (arguments and token claims) against the real migration: the
    status, SQLSTATE, message, detail and hint PostgREST would answer are the recorded ones."""
    (exchange,) = json.loads((RECORDINGS / f"{name}.json").read_text())["exchanges"]
    _seed(pg_database, TENANT, stored_version)
    now = int(time.time())
    token = jwt.encode(
        exchange["request"]["claims"] | {"iat": now, "exp": now + 60}, JWT_SECRET, algorithm="HS256"
    )
    stand_in = PostgrestStandIn(pg_database.admin_dsn, anon_key=ANON_KEY, jwt_secret=JWT_SECRET)
    async with httpx.AsyncClient(transport=httpx.MockTransport(stand_in), base_url=SUPABASE_URL) as client:
        answer = await client.post(
            exchange["request"]["path"],
            json=exchange["request"]["json"],
            headers={"apikey": ANON_KEY, "Authorization": f"Bearer {token}"},
        )
    assert (answer.status_code, answer.json()) == (
        exchange["response"]["status"],
        exchange["response"]["json"],
    )


async def test_each_call_carries_its_own_principal() -> None:
    """Concurrent calls for different principals never share a token (no client-wide auth state)."""
    seen: dict[str, str] = {}

    async def answer(request: httpx.Request) -> httpx.Response:
        claims = _minted_claims(request)
        await asyncio.sleep(0.01)
        seen[claims["sub"]] = claims["app_metadata"]["tenant_id"]
        return httpx.Response(200, json=[])

    store = rest_store(transport=httpx.MockTransport(answer))
    try:
        principals = [(f"tenant-{index}", f"uid-{index}") for index in range(20)]
        await asyncio.gather(*(store.read(tenant, uid=uid) for tenant, uid in principals))
    finally:
        await store.aclose()
    assert seen == {uid: tenant for tenant, uid in principals}


@_parametrize("read_gateway_unavailable")
async def test_non_json_error_is_query_failed(replay: tuple[RestStoragePolicyStore, Replay]) -> None:
    store, _ = replay
    with pytest.raises(StoreQueryFailed) as raised:
        await store.read(TENANT, uid=UID)
    assert raised.value.message == "Failed to read storage policy from Supabase"
    assert raised.value.details["reason"] == "PostgREST error 503: Service Unavailable"


@_parametrize("ready_ok")
async def test_ready(replay: tuple[RestStoragePolicyStore, Replay]) -> None:
    store, _ = replay
    readiness = await store.check_ready()
    assert (readiness.ready, readiness.reason) == (True, None)


@_parametrize("ready_function_missing")
async def test_not_ready_when_the_migration_is_missing(replay: tuple[RestStoragePolicyStore, Replay]) -> None:
    store, _ = replay
    readiness = await store.check_ready()
    assert readiness.ready is False
    assert str(readiness.reason).startswith("PostgREST error PGRST202: Could not find the function")


def _closed_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


async def test_refused_connection_is_query_failed() -> None:
    store = rest_store(f"http://127.0.0.1:{_closed_port()}")
    try:
        with pytest.raises(StoreQueryFailed) as raised:
            await store.merge(TENANT, StoragePolicyChanges(), updated_by="u")
        assert raised.value.message == "Failed to write storage policy to Supabase"
        assert raised.value.details == {"reason": "Supabase unreachable: connection failed"}
        readiness = await store.check_ready()
        assert (readiness.ready, readiness.reason) == (False, "Supabase unreachable: connection failed")
    finally:
        await store.aclose()


async def test_server_that_never_answers_is_a_timeout() -> None:
    release = asyncio.Event()
    received: list[bytes] = []

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        received.append(await reader.read(65536))
        await release.wait()  # never answer until the test ends
        writer.close()

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    store = rest_store(f"http://127.0.0.1:{port}", timeout_s=0.3)
    try:
        with pytest.raises(StoreQueryFailed) as raised:
            await store.read(TENANT, uid=UID)
        assert raised.value.details == {"reason": "Supabase did not answer within 0.3 s"}
        # Exactly one request reached the server: no retry on timeout.
        assert len(received) == 1
        assert received[0].startswith(b"POST /rest/v1/rpc/storage_policy_read ")
    finally:
        release.set()
        await store.aclose()
        server.close()
        await server.wait_closed()


async def test_reasons_never_carry_the_secret() -> None:
    store = rest_store(f"http://127.0.0.1:{_closed_port()}")
    try:
        with pytest.raises(StoreQueryFailed) as raised:
            await store.read(TENANT, uid=UID)
        assert JWT_SECRET not in json.dumps(raised.value.details)
        assert JWT_SECRET not in raised.value.message
    finally:
        await store.aclose()
