"""A tenant's storage policy as the API serves it (document and ETag), and writes through the API."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx

from harness.fixtures.cli_stack import StackUnderTest

POLICY = "/api/v1/settings/storage_policy"


@dataclass(frozen=True)
class Served:
    """What ``GET storage_policy`` answered: the document (None: nothing stored) and its ETag."""

    document: dict[str, Any] | None
    etag: str | None

    @property
    def version(self) -> int:
        assert self.etag is not None, "nothing stored"
        return int(self.etag.strip('"'))


def served(stack: StackUnderTest, tenant: str) -> Served:
    with stack.api_as(tenant) as api:
        answer = api.get(POLICY)
    assert answer.status_code == 200, f"GET {tenant}: {answer.status_code} {answer.text}"
    return Served(answer.json()["data"], answer.headers.get("etag"))


def write(
    stack: StackUnderTest, tenant: str, method: str, body: dict[str, Any], *, if_match: str | None = None
) -> httpx.Response:
    headers = {"If-Match": if_match} if if_match is not None else {}
    with stack.api_as(tenant) as api:
        return api.request(method, POLICY, json=body, headers=headers)


def written(
    stack: StackUnderTest, tenant: str, method: str, body: dict[str, Any], *, if_match: str | None = None
) -> Served:
    """A write that must succeed; what it answered."""
    answer = write(stack, tenant, method, body, if_match=if_match)
    assert answer.status_code == 200, f"{method} {tenant} {body}: {answer.status_code} {answer.text}"
    return Served(answer.json()["data"], answer.headers["etag"])
