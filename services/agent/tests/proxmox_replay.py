"""Replays recorded Proxmox VE API exchanges through ``httpx.MockTransport``.

A recording (``recordings/proxmox/<name>.json``) is a list of exchanges, in order: the request's
method, path and form body, and the answer's status, reason phrase and JSON body (PVE 8's shapes,
written from the API's documentation). A request that is not the next one of the recording, or that
does not carry ``Authorization: PVEAPIToken=<token_id>=<secret>``, fails the test.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import httpx

RECORDINGS = Path(__file__).parent / "recordings" / "proxmox"
BASE_URL = "https://pve1.example.test:8006"
TOKEN_ID = "root@pam!botmox"


def recording(name: str) -> list[dict[str, Any]]:
    document = json.loads((RECORDINGS / f"{name}.json").read_text())
    assert document["base_url"] == BASE_URL
    exchanges: list[dict[str, Any]] = document["exchanges"]
    return exchanges


@dataclass
class Replay:
    """The exchanges still expected, and every request seen (for the test's own checks)."""

    token_secret: str
    exchanges: list[dict[str, Any]] = field(default_factory=list)
    seen: list[httpx.Request] = field(default_factory=list)

    def load(self, *names: str) -> None:
        for name in names:
            self.exchanges.extend(recording(name))

    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self._answer)

    def assert_done(self) -> None:
        assert not self.exchanges, f"requests never made: {[e['request'] for e in self.exchanges]}"

    def _answer(self, request: httpx.Request) -> httpx.Response:
        self.seen.append(request)
        described = f"{request.method} {request.url}"
        assert self.exchanges, f"a request the recording does not hold: {described}"
        expected = self.exchanges.pop(0)
        wanted = expected["request"]
        assert f"{request.url.scheme}://{request.url.netloc.decode()}" == BASE_URL, described
        assert (request.method, request.url.path) == (wanted["method"], wanted["path"]), (
            f"expected {wanted['method']} {wanted['path']}, got {described}"
        )
        assert not request.url.query, f"an unexpected query: {described}"
        form = dict(parse_qsl(request.content.decode())) if request.content else None
        assert form == wanted.get("form"), f"{described}: form {form} != {wanted.get('form')}"
        assert request.headers["authorization"] == f"PVEAPIToken={TOKEN_ID}={self.token_secret}"
        answer = expected["response"]
        return httpx.Response(
            answer["status"],
            json=answer["body"],
            extensions={"reason_phrase": answer["reason"].encode()},
        )
