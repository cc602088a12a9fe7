"""Property-based contract test: schemathesis-generated requests against the served OpenAPI document.

Runs in ``rtdb`` mode on the real emulator (the HTTP layer is identical in both modes; the
differential and store suites cover ``supabase``). Every response must be a non-5xx answer whose
status code, content type and body the document declares for that operation. The agent operations
are the exception: agents need Supabase over SQL, which this app has not, so past the checks of the
request they answer 503 ``SUPABASE_CONFIG_ERROR``, which the document declares; any other 5xx fails.

Why not ``schemathesis.openapi.from_asgi`` + ``case.call()``: schemathesis' ASGI client starts the
application's lifespan on a process-wide event-loop thread and never shuts it down, so the stores
would outlive the test (never closed) and would be bound to a loop the test does not own. Instead
the test owns one event loop, serves the app there through ``httpx.ASGITransport``, loads the
document the app serves at ``/api/v1/openapi.json`` with ``schemathesis.openapi.from_dict``, sends
each generated case through that client and validates the ``httpx.Response`` with
``case.validate_response``.

The loop runs all the time on a thread of its own (``ServingLoop``), as uvicorn's does, not only while
a request is in flight: between two generated cases the store's idle keep-alive connections must see
the emulator close them (after 5 s). A loop paused between requests never read those closes, and the
next write went out on a dead connection: a 502 that a served API does not give.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine, Iterator
from contextlib import AsyncExitStack
from dataclasses import dataclass
from typing import Any, Final, TypeVar

import httpx
import pytest
import schemathesis
from api_support import API_TOKEN, BASE_URL, client_for, make_settings, supabase_token
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from harness.rtdb.process import RtdbEmulatorProcess

pytestmark = pytest.mark.slow

T = TypeVar("T")
REQUEST_TIMEOUT_S: Final = 60.0

OPENAPI_PATH: Final = "/api/v1/openapi.json"
CHECKS: Final = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]
# Operations whose inputs (path parameter, body, If-Match) give hypothesis a space to explore; the
# others have a single possible request, which hypothesis generates once and then stops.
OPERATIONS_WITH_INPUTS: Final = frozenset(
    {
        "PUT /api/v1/settings/storage_policy",
        "PATCH /api/v1/settings/storage_policy",
        "GET /api/v1/settings/{settings_path}",
        "PUT /api/v1/settings/{settings_path}",
        "PATCH /api/v1/settings/{settings_path}",
    }
)
# Agents live in Supabase only: without it, an agent operation answers 503 once the request passed.
AGENT_OPERATIONS: Final = (
    "POST /api/v1/agents/pairings",
    "POST /api/v1/agents/register",
    "GET /api/v1/agents",
    "POST /api/v1/agents/{agent_id}/revoke",
    "POST /api/v1/agents/{agent_id}/commands",
    "GET /api/v1/agents/{agent_id}/commands/{command_id}",
    "POST /api/v1/agents/{agent_id}/commands/{command_id}/cancel",
)
ALL_OPERATIONS: Final = (
    "GET /api/v1/health",
    "GET /api/v1/health/live",
    "GET /api/v1/health/ready",
    "GET /api/v1/auth/verify",
    "GET /api/v1/settings",
    "GET /api/v1/settings/storage_policy",
    *sorted(OPERATIONS_WITH_INPUTS),
    *AGENT_OPERATIONS,
)


@dataclass(frozen=True)
class Caller:
    name: str
    headers: dict[str, str]


CALLERS: Final = {
    "user": Caller("user", {"Authorization": f"Bearer {supabase_token('tenant-st', sub='st-user')}"}),
    "internal": Caller("internal", {"Authorization": f"Bearer {API_TOKEN}"}),
    "anonymous": Caller("anonymous", {}),
    "admin": Caller(
        "admin",
        {
            "Authorization": "Bearer "
            + supabase_token("tenant-st", sub="st-admin", app_metadata={"roles": ["admin"]})
        },
    ),
}


@dataclass(frozen=True)
class Plan:
    """How many examples one (operation, caller, mode) test asks hypothesis for.

    ``curated_paths``: the ``settings_path`` parameter is drawn from ``CURATED_PATHS`` instead of
    being generated from the document's pattern. That pattern has look-aheads, which hypothesis can
    only satisfy by filtering (about a second per example on 2 cores), so the bulk of the settings
    cases use curated paths with generated bodies and only a few explore the pattern itself.
    """

    caller: str
    mode: GenerationMode
    max_examples: int
    curated_paths: bool = False


# Valid, tricky and invalid paths (raw; schemathesis percent-encodes them): bounded fields, nesting,
# the frontend's settings/ prefix, spaces, percent signs, non-ASCII, and what the path rules refuse
# (., .., #, ?, a path below storage_policy, the whole tree as a write target).
CURATED_PATHS: Final = (
    "alerts",
    "alerts/warning_days",
    "proxy",
    "proxy/fraud_score_threshold",
    "proxy/check_interval_hours",
    "settings/generators/names",
    "/ui/theme/",
    "a b/c",
    "50%",
    "été",
    "..",
    "a.b",
    "a#b",
    "a?b",
    "storage_policy/sync",
    "settings/settings",
)

# storage_policy writes: 2 operations x (user 200 + internal 40 + anonymous 20 positive, user 100
# negative) = 720. Settings paths: 3 operations x (user 80 curated + 8 from the pattern positive,
# user 30 curated + 8 from the pattern negative, internal 20 + anonymous 10 curated) = 468. About
# 1,190 requested in total; hypothesis stops earlier only when it exhausts an input space.
POLICY_PLANS: Final = (
    Plan("user", GenerationMode.POSITIVE, 200),
    Plan("internal", GenerationMode.POSITIVE, 40),
    Plan("anonymous", GenerationMode.POSITIVE, 20),
    Plan("user", GenerationMode.NEGATIVE, 100),
)
SETTINGS_PATH_PLANS: Final = (
    Plan("user", GenerationMode.POSITIVE, 80, curated_paths=True),
    Plan("user", GenerationMode.POSITIVE, 8),
    Plan("user", GenerationMode.NEGATIVE, 30, curated_paths=True),
    Plan("user", GenerationMode.NEGATIVE, 8),
    Plan("internal", GenerationMode.POSITIVE, 20, curated_paths=True),
    Plan("anonymous", GenerationMode.POSITIVE, 10, curated_paths=True),
)
PLANS_WITHOUT_INPUTS: Final = (
    Plan("user", GenerationMode.POSITIVE, 5),
    Plan("anonymous", GenerationMode.POSITIVE, 5),
)


# Agent operations: 7 x (user 15 + admin 10 + anonymous 5 positive, user 10 negative) = 280.
AGENT_PLANS: Final = (
    Plan("user", GenerationMode.POSITIVE, 15),
    Plan("admin", GenerationMode.POSITIVE, 10),
    Plan("anonymous", GenerationMode.POSITIVE, 5),
    Plan("user", GenerationMode.NEGATIVE, 10),
)


def _plans(label: str) -> tuple[Plan, ...]:
    if label in AGENT_OPERATIONS:
        return AGENT_PLANS
    if "{settings_path}" in label:
        return SETTINGS_PATH_PLANS
    if label in OPERATIONS_WITH_INPUTS:
        return POLICY_PLANS
    return PLANS_WITHOUT_INPUTS


def _cases() -> list[Any]:
    cases: list[Any] = []
    for label in ALL_OPERATIONS:
        for plan in _plans(label):
            paths = "-curated" if plan.curated_paths else ""
            test_id = f"{label}-{plan.caller}-{plan.mode.value}{paths}"
            cases.append(pytest.param(label, plan, id=test_id))
    return cases


def _strategy(operation: Any, plan: Plan) -> st.SearchStrategy[Any]:
    if not plan.curated_paths:
        return operation.as_strategy(generation_mode=plan.mode)  # type: ignore[no-any-return]
    return st.sampled_from(CURATED_PATHS).flatmap(
        lambda path: operation.as_strategy(generation_mode=plan.mode, path_parameters={"settings_path": path})
    )


class ServingLoop:
    """An event loop running on a thread of its own until ``close``; ``run`` waits for a coroutine
    scheduled on it (bounded: a stuck request fails the test instead of hanging it)."""

    def __init__(self) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="serving-loop", daemon=True)
        self._thread.start()

    def run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(timeout=REQUEST_TIMEOUT_S)

    def close(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=REQUEST_TIMEOUT_S)
        self._loop.run_until_complete(self._loop.shutdown_asyncgens())
        self._loop.close()


@dataclass
class LiveApi:
    """The app on its own running event loop, with a client and the schema it serves."""

    loop: ServingLoop
    client: httpx.AsyncClient
    schema: Any

    def send(self, request: dict[str, Any]) -> httpx.Response:
        return self.loop.run(self.client.request(**request))


@pytest.fixture
def live_api(rtdb_emulator: RtdbEmulatorProcess, rtdb_namespace: str) -> Iterator[LiveApi]:
    app_settings = make_settings(
        data_backend="rtdb",
        firebase_database_url=f"https://{rtdb_namespace}.firebaseio.com",
        firebase_database_emulator_host=rtdb_emulator.host,
    )
    loop = ServingLoop()
    try:
        stack = AsyncExitStack()
        try:
            client = loop.run(stack.enter_async_context(client_for(app_settings)))
            served = loop.run(client.get(OPENAPI_PATH))
            assert served.status_code == 200, served.text
            schema = schemathesis.openapi.from_dict(served.json())
            yield LiveApi(loop, client, schema)
        finally:
            loop.run(stack.aclose())
    finally:
        loop.close()


def _httpx_request(transport_kwargs: dict[str, Any]) -> dict[str, Any]:
    """schemathesis' requests-style kwargs as ``httpx.AsyncClient.request`` kwargs."""
    request: dict[str, Any] = {
        "method": transport_kwargs["method"],
        "url": transport_kwargs["url"],
        "headers": transport_kwargs.get("headers") or {},
        "params": transport_kwargs.get("params") or None,
        "cookies": transport_kwargs.get("cookies") or None,
    }
    if "json" in transport_kwargs:
        request["json"] = transport_kwargs["json"]
    elif transport_kwargs.get("data") is not None:
        request["content"] = transport_kwargs["data"]
    return request


@pytest.mark.parametrize(("label", "plan"), _cases())
def test_generated_requests_conform_to_the_document(live_api: LiveApi, label: str, plan: Plan) -> None:
    operation = live_api.schema.find_operation_by_label(label)
    assert operation is not None, f"{label} is not in the served document"
    caller = CALLERS[plan.caller]
    sent: list[int] = []
    without_supabase = label in AGENT_OPERATIONS
    checks = [check for check in CHECKS if check is not not_a_server_error] if without_supabase else CHECKS

    @given(case=_strategy(operation, plan))
    @settings(
        max_examples=plan.max_examples,
        derandomize=True,  # the same cases on every run
        database=None,  # no .hypothesis directory; derandomized runs need no example database
        deadline=None,  # the real emulator's latency is not the subject
        # No shrinking: it replays a failure hundreds of times against the real emulator; the
        # first failing case is reported as found (with a curl line to reproduce it).
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much, HealthCheck.data_too_large],
        print_blob=True,
    )
    def check(case: Any) -> None:
        transport_kwargs = case.as_transport_kwargs(base_url=BASE_URL, headers=caller.headers)
        response = live_api.send(_httpx_request(transport_kwargs))
        sent.append(response.status_code)
        if without_supabase and response.status_code >= 500:
            assert response.status_code == 503, response.text
            assert response.json()["error"]["code"] == "SUPABASE_CONFIG_ERROR"
        case.validate_response(
            response, checks=checks, headers=transport_kwargs["headers"], transport_kwargs=transport_kwargs
        )

    check()
    # Guards against a vacuous run (e.g. a strategy that filtered everything away).
    assert sent
    if without_supabase and plan.caller == "admin":
        assert 503 in sent, (label, sent)  # valid requests of an admin reach the store
    if label in OPERATIONS_WITH_INPUTS and plan.mode is GenerationMode.POSITIVE and plan.max_examples > 10:
        assert len(sent) >= plan.max_examples // 2, (label, len(sent))
