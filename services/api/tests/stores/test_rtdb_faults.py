"""The RTDB emulator going away and coming back: failures are StoreQueryFailed with the contract's
messages, nothing is half-written, and the same store objects work again afterwards. A write that
gets no usable answer is not sent again; a read is."""

from __future__ import annotations

import asyncio
import re
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, Final

import pytest

from botmox_api.model import IfMatch, JsonValue, StoragePolicyChanges, StoreQueryFailed
from botmox_api.stores._rtdb import RtdbTarget, resolve_rtdb_target
from botmox_api.stores.rtdb_settings import RtdbSettingsStore
from botmox_api.stores.rtdb_storage_policy import RtdbStoragePolicyStore


def _target(host: str, namespace: str) -> RtdbTarget:
    target = resolve_rtdb_target(
        database_url=f"http://{host}?ns={namespace}",
        project_id=None,
        emulator_host=None,
        credentials_path=None,
    )
    assert target is not None
    return target


async def test_emulator_stopped_then_started(rtdb_private: Any, tenant: str) -> None:
    target = _target(rtdb_private.host, "faults")
    settings = RtdbSettingsStore(target, http_timeout_s=2.0)
    policy = RtdbStoragePolicyStore(target, http_timeout_s=2.0)
    try:
        await settings.write(tenant, ("alerts",), {"warning_days": 7}, updated_at=1)
        stored = await policy.replace(tenant, StoragePolicyChanges(operational="local"), updated_by="u")

        rtdb_private.stop()
        failures = {
            "Failed to read settings from RTDB": settings.read_tree(tenant),
            "Failed to write settings to RTDB": settings.write(tenant, ("alerts",), {"x": 1}, updated_at=2),
            "Failed to read storage policy from RTDB": policy.read(tenant),
            "Failed to write storage policy to RTDB": policy.merge(
                tenant,
                StoragePolicyChanges(sync_enabled=True),
                updated_by="v",
                if_match=IfMatch(any_version=True),
            ),
        }
        for message, call in failures.items():
            with pytest.raises(StoreQueryFailed) as raised:
                await call
            assert (raised.value.backend, raised.value.message) == ("rtdb", message)
            assert raised.value.details == {"reason": "RTDB unreachable: connection failed"}
        readiness = await settings.check_ready()
        assert (readiness.ready, readiness.reason) == (False, "RTDB unreachable: connection failed")
        assert (await policy.check_ready()).ready is False

        rtdb_private.start()
        assert (await settings.check_ready()).ready is True
        # Every acknowledged write survived, and none of the failed ones left anything behind.
        tree = await settings.read_tree(tenant)
        raw_policy = tree["storage_policy"]
        assert isinstance(raw_policy, dict)
        assert tree == {
            "alerts": {"warning_days": 7, "updated_at": 1},
            "storage_policy": {**stored.to_document(), "version": 1, "write_id": raw_policy["write_id"]},
        }
        assert await policy.read(tenant) == stored
        again = await policy.merge(tenant, StoragePolicyChanges(sync_enabled=True), updated_by="v")
        assert again.version == 2
    finally:
        await settings.aclose()
        await policy.aclose()


async def test_nothing_listening_is_query_failed(tenant: str) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    store = RtdbStoragePolicyStore(_target(f"127.0.0.1:{port}", "nobody"), http_timeout_s=1.0)
    try:
        with pytest.raises(StoreQueryFailed) as raised:
            await store.read(tenant)
        assert raised.value.details == {"reason": "RTDB unreachable: connection failed"}
    finally:
        await store.aclose()


async def test_closed_store_refuses_calls(rtdb_target: RtdbTarget, tenant: str) -> None:
    store = RtdbSettingsStore(rtdb_target)
    await store.read_tree(tenant)
    await store.aclose()
    with pytest.raises(StoreQueryFailed) as raised:
        await store.read_tree(tenant)
    assert raised.value.details == {"reason": "RTDB store is closed"}


async def test_silent_server_times_out_after_the_configured_http_timeout(tenant: str) -> None:
    release = asyncio.Event()

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(65536)
        await release.wait()  # never answer until the test ends
        writer.close()

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    store = RtdbSettingsStore(_target(f"127.0.0.1:{port}", "silent"), http_timeout_s=0.3)
    try:
        with pytest.raises(StoreQueryFailed) as raised:
            await store.read_tree(tenant)
        assert raised.value.details == {"reason": "RTDB did not answer within 0.3 s"}
    finally:
        release.set()
        await store.aclose()
        server.close()
        await server.wait_closed()


_OVERLOADED: Final = b'{"error": "overloaded"}'
_ANSWER_503: Final = (
    b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nConnection: close\r\n"
    b"Content-Length: " + str(len(_OVERLOADED)).encode() + b"\r\n\r\n" + _OVERLOADED
)


# Retry-After: 0 spares the test urllib3's backoff (0, 1, 2, 4 s) between the retries.
_ANSWER_503_RETRY_NOW: Final = _ANSWER_503.replace(
    b"Connection: close\r\n", b"Connection: close\r\nRetry-After: 0\r\n"
)


@asynccontextmanager
async def _recording_server(answer: bytes | None) -> AsyncIterator[tuple[str, list[str]]]:
    """A server that records each request's method, then sends ``answer`` (or nothing) and hangs up."""
    methods: list[str] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        methods.append(head.split(b" ", 1)[0].decode())
        length = re.search(rb"(?i)\r\ncontent-length: *(\d+)", head)
        await reader.readexactly(int(length.group(1)) if length else 0)
        if answer is not None:
            writer.write(answer)
            await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    try:
        yield f"127.0.0.1:{server.sockets[0].getsockname()[1]}", methods
    finally:
        server.close()
        await server.wait_closed()


@pytest.mark.parametrize(
    ("answer", "reason"),
    [(None, "RTDB unreachable: connection failed"), (_ANSWER_503, "RTDB answered HTTP 503: overloaded")],
    ids=["hang-up", "503"],
)
@pytest.mark.parametrize("body", [{"x": 1}, 5, None], ids=["PATCH", "PUT", "DELETE"])
async def test_a_write_without_a_usable_answer_is_sent_once(
    tenant: str, answer: bytes | None, reason: str, body: JsonValue
) -> None:
    async with _recording_server(answer) as (host, methods):
        store = RtdbSettingsStore(_target(host, "once"), http_timeout_s=2.0)
        try:
            with pytest.raises(StoreQueryFailed) as raised:
                await store.write(tenant, ("alerts",), body, updated_at=1)
        finally:
            await store.aclose()
    assert raised.value.details == {"reason": reason}
    assert len(methods) == 1


async def test_a_read_without_an_answer_is_sent_again(tenant: str) -> None:
    async with _recording_server(None) as (host, methods):
        store = RtdbSettingsStore(_target(host, "again"), http_timeout_s=2.0)
        try:
            with pytest.raises(StoreQueryFailed) as raised:
                await store.read_tree(tenant)
        finally:
            await store.aclose()
    assert raised.value.details == {"reason": "RTDB unreachable: connection failed"}
    assert methods == ["GET", "GET"]


async def test_a_read_answered_503_is_sent_up_to_4_more_times(tenant: str) -> None:
    async with _recording_server(_ANSWER_503_RETRY_NOW) as (host, methods):
        store = RtdbSettingsStore(_target(host, "busy"), http_timeout_s=2.0)
        try:
            with pytest.raises(StoreQueryFailed) as raised:
                await store.read_tree(tenant)
        finally:
            await store.aclose()
    assert raised.value.details == {"reason": "RTDB answered HTTP 503: overloaded"}
    assert methods == ["GET"] * 5
