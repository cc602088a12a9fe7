"""The contract does not change with the flag: one request sequence, identical answers in both modes.

A fresh tenant sends the sequence to the API in ``rtdb`` mode; after ``flip --backend supabase``
another fresh tenant sends it again, and after ``flip --backend rtdb`` a third one. Each answer is
compared whole (status, the headers of the contract, the body) after normalising only what differs
legitimately between two runs of the same sequence:

- ``updated_at`` (the write's wall-clock time in ms): replaced by ``<ms>`` once checked to be an
  integer within the run's time window;
- ``updated_by`` (the caller's uid, which differs because the tenant does): replaced by ``<uid>``
  once checked to be the uid the API itself reports for the caller (``/auth/verify``);
- ``x-correlation-id``, ``date``, ``server``, ``content-length`` (per request, or following from the
  above): not compared.

Everything else is compared as is, the ETag included: versions start at 1 and count the same way.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from operator_commands import flip

from harness.fixtures.cli_stack import StackUnderTest

pytestmark = pytest.mark.integration

POLICY = "/api/v1/settings/storage_policy"
SETTINGS = "/api/v1/settings"
# Headers of the contract (docs/contracts/api-v1.md); the rest are per request or per server.
COMPARED_HEADERS = ("content-type", "etag", "allow")


@dataclass(frozen=True)
class Step:
    method: str
    path: str
    body: object = None
    headers: tuple[tuple[str, str], ...] = ()
    raw: bytes | None = None

    @property
    def label(self) -> str:
        shown = self.raw.decode() if self.raw is not None else self.body
        return f"{self.method} {self.path} {dict(self.headers) or ''} {shown if shown is not None else ''}"


def _json_headers(*pairs: tuple[str, str]) -> tuple[tuple[str, str], ...]:
    return (("content-type", "application/json"), *pairs)


SEQUENCE = (
    Step("GET", POLICY),  # nothing stored: data null, no ETag
    Step("PATCH", POLICY, {"sync": {"enabled": True}}, (("if-match", '"1"'),)),  # 412: nothing to match
    Step("PUT", POLICY, {"operational": "local"}, (("if-match", "*"),)),  # 412: * matches nothing stored
    Step("PUT", POLICY, {"operational": "local"}),  # version 1
    Step("GET", POLICY),
    Step("PATCH", POLICY, {"sync": {"enabled": True}}, (("if-match", '"1"'),)),  # version 2
    Step("PUT", POLICY, {"operational": "cloud"}, (("if-match", '"1"'),)),  # 412, current_version 2
    Step("PATCH", POLICY, {"operational": "cloud"}),  # version 3, no If-Match
    Step("PUT", POLICY, {"sync": {"enabled": False}}, (("if-match", '"2", "3"'),)),  # version 4, cloud
    Step("PUT", POLICY, {}),  # 400: an empty body
    Step("PUT", POLICY, {"operational": "moon"}),  # 400: a bad value
    Step("PATCH", POLICY, {"sync": {"enabled": "yes"}, "extra": 1}),  # 400: a bad type, an unknown key
    Step("PATCH", POLICY, raw=b'{"operational": '),  # 400: malformed JSON
    Step("PUT", POLICY, {"operational": "local"}, (("if-match", 'W/"4"'),)),  # 412: weak tags never match
    Step("PUT", POLICY, {"operational": "local"}, (("if-match", '"04"'),)),  # 412: not exactly an ETag
    Step("GET", f"{SETTINGS}/settings/storage_policy"),  # the other spelling
    Step("PATCH", f"{SETTINGS}/settings/storage_policy", {"operational": "local"}, (("if-match", '"4"'),)),
    Step("DELETE", POLICY),  # 405 with Allow
    Step("PUT", f"{SETTINGS}/alerts", {"warning_days": 14, "channel": "email"}),
    Step("PATCH", f"{SETTINGS}/alerts", {"channel": None, "sms": True}),
    Step("GET", f"{SETTINGS}/alerts"),
    Step("PUT", f"{SETTINGS}/ui/theme", "dark"),
    Step("PUT", f"{SETTINGS}/alerts/bad.key", 1),  # 400: an invalid path
    Step("GET", SETTINGS),  # the whole tree: generic paths and the policy
    Step("GET", POLICY),
)


@dataclass(frozen=True)
class Answer:
    status: int
    headers: dict[str, str]
    body: Any


def _normalised(value: Any, *, uid: str, window: tuple[int, int], where: str) -> Any:
    if isinstance(value, dict):
        result = {}
        for key, item in value.items():
            if key == "updated_at" and not isinstance(item, dict):
                assert isinstance(item, int), f"{where}: updated_at {item!r} is no integer"
                assert window[0] <= item <= window[1], f"{where}: updated_at {item} outside the run"
                result[key] = "<ms>"
            elif key == "updated_by" and not isinstance(item, dict):
                assert item == uid, f"{where}: updated_by {item!r} is not the caller {uid!r}"
                result[key] = "<uid>"
            else:
                result[key] = _normalised(item, uid=uid, window=window, where=where)
        return result
    if isinstance(value, list):
        return [_normalised(item, uid=uid, window=window, where=where) for item in value]
    return value


def _run_sequence(stack: StackUnderTest, tenant: str) -> list[Answer]:
    answers = []
    with stack.api_as(tenant) as api:
        principal = api.get("/api/v1/auth/verify")
        assert principal.status_code == 200, principal.text
        uid = principal.json()["data"]["uid"]
        began = int(time.time() * 1000)
        raw = [
            api.request(
                step.method,
                step.path,
                json=step.body if step.raw is None and step.method != "GET" else None,
                content=step.raw,
                headers=dict(step.headers) if step.raw is None else _json_headers(*step.headers),
            )
            for step in SEQUENCE
        ]
        ended = int(time.time() * 1000)
    for step, response in zip(SEQUENCE, raw, strict=True):
        headers = {name: response.headers[name] for name in COMPARED_HEADERS if name in response.headers}
        body = _normalised(response.json(), uid=uid, window=(began, ended), where=step.label)
        answers.append(Answer(response.status_code, headers, body))
    return answers


def _differences(before: list[Answer], after: list[Answer]) -> list[str]:
    return [
        f"{step.label}:\n  before {old}\n  after  {new}"
        for step, old, new in zip(SEQUENCE, before, after, strict=True)
        if old != new
    ]


def test_the_same_requests_get_the_same_answers_in_both_modes(
    stack: StackUnderTest, tenants: Callable[[int], list[str]]
) -> None:
    in_rtdb, in_supabase, in_rtdb_again = tenants(3)
    before = _run_sequence(stack, in_rtdb)
    # The sequence covers what it claims to: stored and absent policies, 412, 400, 405, other paths.
    shown = "\n".join(f"{step.label} -> {answer}" for step, answer in zip(SEQUENCE, before, strict=True))
    assert {answer.status for answer in before} == {200, 400, 405, 412}, shown
    assert before[-1].headers["etag"] == '"5"', shown

    flip(stack, "supabase")
    after = _run_sequence(stack, in_supabase)
    assert not _differences(before, after), "\n".join(_differences(before, after))
    assert stack.policy_row(in_supabase) is not None, "in supabase mode the policy must be a row"

    flip(stack, "rtdb")
    again = _run_sequence(stack, in_rtdb_again)
    assert not _differences(before, again), "\n".join(_differences(before, again))
    assert stack.policy_row(in_rtdb_again) is None
    assert isinstance(stack.settings_node("storage_policy", in_rtdb_again), dict)
