"""The REST transport against recorded PostgREST exchanges (``recordings/*.json``), plus a real
timeout and a real refused connection on 127.0.0.1.

PostgREST cannot run here; the recordings follow its documented RPC shapes: ``POST
/rest/v1/rpc/<function>`` with the arguments as a JSON object, 200 with an array of rows, errors as
``{"code", "details", "hint", "message"}`` (custom SQLSTATEs such as BM412 come back as 400). The
replay asserts every request the store sends: method, path, body, and the service-role headers.
"""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from botmox_api.stores.protocols import (
    IfMatch,
    StoragePolicy,
    StoragePolicyChanges,
    StoreQueryFailed,
    VersionConflict,
)
from botmox_api.stores.supabase_rest import RestStoragePolicyStore

RECORDINGS = Path(__file__).parent / "recordings"
SUPABASE_URL = "http://supabase.test"
SERVICE_ROLE_KEY = "service-role-key-for-tests"
TENANT = "acme"


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
        assert request.headers["apikey"] == SERVICE_ROLE_KEY
        assert request.headers["authorization"] == f"Bearer {SERVICE_ROLE_KEY}"
        assert request.headers["content-type"] == "application/json"
        assert json.loads(request.content) == expected["json"]
        if "json" in answer:
            return httpx.Response(answer["status"], headers=answer["headers"], json=answer["json"])
        return httpx.Response(answer["status"], headers=answer["headers"], text=answer["text"])

    def assert_done(self) -> None:
        assert len(self.sent) == len(self.exchanges)


@pytest.fixture
async def replay(request: pytest.FixtureRequest) -> AsyncIterator[tuple[RestStoragePolicyStore, Replay]]:
    recorded = Replay(request.param)
    store = RestStoragePolicyStore(
        SUPABASE_URL, SERVICE_ROLE_KEY, transport=httpx.MockTransport(recorded.handle)
    )
    yield store, recorded
    await store.aclose()
    recorded.assert_done()


def _parametrize(name: str) -> pytest.MarkDecorator:
    return pytest.mark.parametrize("replay", [name], indirect=True)


@_parametrize("read_nothing_stored")
async def test_read_nothing_stored(replay: tuple[RestStoragePolicyStore, Replay]) -> None:
    store, _ = replay
    assert await store.read(TENANT) is None


@_parametrize("read_row")
async def test_read_row(replay: tuple[RestStoragePolicyStore, Replay]) -> None:
    store, _ = replay
    assert await store.read(TENANT) == StoragePolicy(
        operational="local", sync_enabled=True, updated_at=1764064800123, updated_by="uid-42", version=4
    )


@_parametrize("replace_defaults")
async def test_replace_sends_nulls_for_omitted_fields(replay: tuple[RestStoragePolicyStore, Replay]) -> None:
    store, _ = replay
    written = await store.replace(TENANT, StoragePolicyChanges(), updated_by="uid-42")
    assert (written.operational, written.sync_enabled, written.version) == ("cloud", False, 1)


@_parametrize("merge_if_match_list")
async def test_merge_sends_if_match_versions(replay: tuple[RestStoragePolicyStore, Replay]) -> None:
    store, _ = replay
    written = await store.merge(
        TENANT,
        StoragePolicyChanges(operational="local", sync_enabled=True),
        updated_by="uid-42",
        if_match=IfMatch(versions=frozenset({3, 1})),
    )
    assert written.version == 4


@_parametrize("merge_if_match_star")
async def test_merge_sends_star_as_if_exists(replay: tuple[RestStoragePolicyStore, Replay]) -> None:
    store, _ = replay
    written = await store.merge(
        TENANT,
        StoragePolicyChanges(sync_enabled=True),
        updated_by="uid-42",
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
            updated_by="uid-42",
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
            updated_by="uid-42",
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
            updated_by="uid-42",
            if_match=IfMatch(any_version=True),
        )
    assert raised.value.current_version is None


@_parametrize("replace_function_missing")
async def test_postgrest_error_is_query_failed_with_its_message(
    replay: tuple[RestStoragePolicyStore, Replay],
) -> None:
    store, _ = replay
    with pytest.raises(StoreQueryFailed) as raised:
        await store.replace(TENANT, StoragePolicyChanges(), updated_by="uid-42")
    assert raised.value.backend == "supabase"
    assert raised.value.message == "Failed to write storage policy to Supabase"
    assert raised.value.details["reason"] == (
        "PostgREST error PGRST202: Could not find the function public.storage_policy_replace(p_if_exists,"
        " p_if_match, p_operational, p_sync_enabled, p_tenant_id, p_updated_by) in the schema cache"
    )


@_parametrize("merge_rls_refused")
async def test_rls_refusal_is_query_failed(replay: tuple[RestStoragePolicyStore, Replay]) -> None:
    store, _ = replay
    with pytest.raises(StoreQueryFailed) as raised:
        await store.merge(TENANT, StoragePolicyChanges(sync_enabled=True), updated_by="uid-42")
    assert str(raised.value.details["reason"]).startswith("PostgREST error 42501: new row violates")


@_parametrize("read_gateway_unavailable")
async def test_non_json_error_is_query_failed(replay: tuple[RestStoragePolicyStore, Replay]) -> None:
    store, _ = replay
    with pytest.raises(StoreQueryFailed) as raised:
        await store.read(TENANT)
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
    store = RestStoragePolicyStore(f"http://127.0.0.1:{_closed_port()}", SERVICE_ROLE_KEY)
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
    store = RestStoragePolicyStore(f"http://127.0.0.1:{port}", SERVICE_ROLE_KEY, timeout_s=0.3)
    try:
        with pytest.raises(StoreQueryFailed) as raised:
            await store.read(TENANT)
        assert raised.value.details == {"reason": "Supabase did not answer within 0.3 s"}
        # Exactly one request reached the server: no retry on timeout.
        assert len(received) == 1
        assert received[0].startswith(b"POST /rest/v1/rpc/storage_policy_read ")
    finally:
        release.set()
        await store.aclose()
        server.close()
        await server.wait_closed()


async def test_reasons_never_carry_the_key() -> None:
    store = RestStoragePolicyStore(f"http://127.0.0.1:{_closed_port()}", SERVICE_ROLE_KEY)
    try:
        with pytest.raises(StoreQueryFailed) as raised:
            await store.read(TENANT)
        assert SERVICE_ROLE_KEY not in json.dumps(raised.value.details)
        assert SERVICE_ROLE_KEY not in raised.value.message
    finally:
        await store.aclose()
