"""Production credentials of the RTDB stores: the access token is fetched in a worker thread only when
due (first use, close to expiry, after a 401), one refresh at a time, and sent as a bearer token."""

from __future__ import annotations

import asyncio
import datetime
import re
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest

from botmox_api.model import StoreQueryFailed
from botmox_api.stores._rtdb import RtdbTarget
from botmox_api.stores._rtdb_auth import REFRESH_MARGIN, AccessToken
from botmox_api.stores.rtdb_settings import RtdbSettingsStore


class FakeCredential:
    """Stands for a google-auth credential: each refresh mints the next token."""

    def __init__(self, lifetime: datetime.timedelta) -> None:
        self.lifetime = lifetime
        self.token: str | None = None
        self.expiry: datetime.datetime | None = None
        self.refresh_threads: list[threading.Thread] = []

    def refresh(self, request: Any) -> None:
        self.refresh_threads.append(threading.current_thread())
        self.token = f"token-{len(self.refresh_threads)}"
        now = datetime.datetime.now(datetime.UTC).replace(tzinfo=None)
        self.expiry = now + self.lifetime


def _token_with(monkeypatch: pytest.MonkeyPatch, credential: FakeCredential) -> AccessToken:
    monkeypatch.setattr(AccessToken, "_load", lambda self: credential)
    return AccessToken("/service-account.json")


async def test_one_refresh_in_a_worker_thread_for_concurrent_first_calls(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    credential = FakeCredential(datetime.timedelta(hours=1))
    token = _token_with(monkeypatch, credential)
    headers = await asyncio.gather(*(token.authorization() for _ in range(20)))
    assert headers == ["Bearer token-1"] * 20
    assert len(credential.refresh_threads) == 1
    assert credential.refresh_threads[0] is not threading.current_thread()
    # Fresh: later calls read the cached token.
    assert await token.authorization() == "Bearer token-1"
    assert len(credential.refresh_threads) == 1


async def test_a_token_close_to_expiry_is_refreshed_before_use(monkeypatch: pytest.MonkeyPatch) -> None:
    # Expires within google-auth's refresh margin: every use refreshes it first.
    credential = FakeCredential(REFRESH_MARGIN - datetime.timedelta(seconds=1))
    token = _token_with(monkeypatch, credential)
    assert await token.authorization() == "Bearer token-1"
    assert await token.authorization() == "Bearer token-2"


async def test_a_refused_token_is_replaced_on_the_next_call(monkeypatch: pytest.MonkeyPatch) -> None:
    credential = FakeCredential(datetime.timedelta(hours=1))
    token = _token_with(monkeypatch, credential)
    assert await token.authorization() == "Bearer token-1"
    token.expire()
    assert await token.authorization() == "Bearer token-2"


@asynccontextmanager
async def _server(status: bytes, body: bytes) -> AsyncIterator[tuple[str, list[bytes]]]:
    """Answers every request with ``status`` and ``body``; records each request's head."""
    heads: list[bytes] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            try:
                head = await reader.readuntil(b"\r\n\r\n")
            except asyncio.IncompleteReadError:  # the client closed its connection
                writer.close()
                return
            heads.append(head)
            length = re.search(rb"(?i)\r\ncontent-length: *(\d+)", head)
            await reader.readexactly(int(length.group(1)) if length else 0)
            writer.write(
                b"HTTP/1.1 " + status + b"\r\nContent-Type: application/json\r\n"
                b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body
            )
            await writer.drain()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    try:
        yield f"127.0.0.1:{server.sockets[0].getsockname()[1]}", heads
    finally:
        server.close()
        await server.wait_closed()


@pytest.mark.parametrize(
    ("status", "body", "reason"),
    [
        (b"200 OK", b'{"a": 1}', None),
        (
            b"401 Unauthorized",
            b'{"error": "Unauthorized request."}',
            "RTDB answered HTTP 401: Unauthorized request.",
        ),
    ],
    ids=["200", "401"],
)
async def test_production_requests_carry_the_access_token(
    monkeypatch: pytest.MonkeyPatch, status: bytes, body: bytes, reason: str | None, tenant: str
) -> None:
    credential = FakeCredential(datetime.timedelta(hours=1))
    monkeypatch.setattr(AccessToken, "_load", lambda self: credential)
    async with _server(status, body) as (host, heads):
        # Production as the stores see it, over plain HTTP so a local server can answer.
        store = RtdbSettingsStore(RtdbTarget(f"http://{host}", False, "/service-account.json"))
        try:
            for _ in range(2):
                if reason is None:
                    assert await store.read(tenant, ("alerts",)) == {"a": 1}
                else:
                    with pytest.raises(StoreQueryFailed) as raised:
                        await store.read(tenant, ("alerts",))
                    assert raised.value.details == {"reason": reason}
        finally:
            await store.aclose()
    first_lines = [head.split(b"\r\n", 1)[0] for head in heads]
    # No ``ns`` parameter (that is the emulator's), and a 401 is not retried.
    assert first_lines == [f"GET /tenants/{tenant}/settings/alerts.json HTTP/1.1".encode()] * 2
    tokens = [re.search(rb"(?i)\r\nauthorization: ([^\r]*)", head) for head in heads]
    sent = [match.group(1) if match else None for match in tokens]
    # A refused token is replaced before the next call; an accepted one is kept.
    assert sent == ([b"Bearer token-1"] * 2 if reason is None else [b"Bearer token-1", b"Bearer token-2"])
