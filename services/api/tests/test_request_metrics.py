"""``botmox_api_requests_total``, ``botmox_api_request_duration_seconds`` and
``botmox_api_store_errors_total`` (``request_metrics.py``): labelled by route template, never the raw
path; status and ``DATA_BACKEND``; store failures counted where they become envelopes."""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Final

import httpx
import pytest
from api_fakes import memory_store_set
from api_support import INFRA_TOKEN, bearer, client_for, make_settings, user
from fastapi import APIRouter
from prometheus_client.parser import text_string_to_metric_families

from botmox_api.metrics import ApiMetrics
from botmox_api.model import StoreNotConfigured, StoreQueryFailed
from botmox_api.request_metrics import RequestMetrics, RoutedPrefix, RouteTemplates, StoreFailure

A: Final = user("tenant-a")
POLICY: Final = "/api/v1/settings/storage_policy"
COMMAND: Final = "/api/v1/agents/{agent_id}/commands/{command_id}"
A_COMMAND: Final = (
    "/api/v1/agents/00000000-0000-0000-0000-000000000001/commands/00000000-0000-0000-0000-000000000002"
)

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


async def _samples(client: httpx.AsyncClient) -> Samples:
    response = await client.get("/metrics", headers=bearer(INFRA_TOKEN))
    assert response.status_code == 200
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def _value(samples: Samples, name: str, labels: Mapping[str, str]) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def _requests(samples: Samples, method: str, route: str, status: int, backend: str = "rtdb") -> float:
    labels = {"method": method, "route": route, "status": str(status), "backend": backend}
    return _value(samples, "botmox_api_requests_total", labels)


def _routes_seen(samples: Samples) -> set[str]:
    return {dict(labels)["route"] for name, labels in samples if name == "botmox_api_requests_total"}


async def test_requests_are_counted_by_route_template_and_status() -> None:
    async with client_for(make_settings(), memory_store_set()) as client:
        assert (await client.get(POLICY, headers=A)).status_code == 200  # the direct route
        assert (await client.get("/api/v1/settings/alerts/rules", headers=A)).status_code == 200
        not_found = await client.get(A_COMMAND, headers=A)  # the route's own 404 envelope
        assert (not_found.status_code, not_found.json()["error"]["code"]) == (404, "NOT_FOUND")
        assert (await client.get(A_COMMAND)).status_code == 401  # refused by the gate, before routing
        assert (await client.get(A_COMMAND, headers=bearer("not-a-token"))).status_code == 401
        samples = await _samples(client)
    assert _requests(samples, "GET", POLICY, 200) == 1
    assert _requests(samples, "GET", "/api/v1/settings/{settings_path}", 200) == 1
    assert _requests(samples, "GET", COMMAND, 404) == 1
    assert _requests(samples, "GET", COMMAND, 401) == 2
    # Never a raw path: the ids are not in any label.
    assert not any("0000" in route for route in _routes_seen(samples))


async def test_unmatched_paths_and_unusual_methods_share_bounded_labels() -> None:
    async with client_for(make_settings(), memory_store_set()) as client:
        for path in ("/api/v1/nope", "/api/v1/nope/again", "/elsewhere"):
            response = await client.get(path, headers=A)
            assert response.status_code == 404
            assert response.json()["error"]["code"] == "NOT_FOUND"
        assert (await client.request("BREW", "/api/v1/health")).status_code == 405
        samples = await _samples(client)
    assert _requests(samples, "GET", "unmatched", 404) == 3
    assert _requests(samples, "OTHER", "/api/v1/health", 405) == 1
    assert _routes_seen(samples) == {"unmatched", "/api/v1/health"}


async def test_the_duration_histogram_is_observed_per_route() -> None:
    async with client_for(make_settings(data_backend="supabase"), memory_store_set()) as client:
        for _ in range(3):
            assert (await client.get("/api/v1/health/live")).status_code == 200
        samples = await _samples(client)
    labels = {"method": "GET", "route": "/api/v1/health/live", "backend": "supabase"}
    assert _value(samples, "botmox_api_request_duration_seconds_count", labels) == 3
    assert _value(samples, "botmox_api_request_duration_seconds_bucket", {**labels, "le": "+Inf"}) == 3
    assert _value(samples, "botmox_api_request_duration_seconds_bucket", {**labels, "le": "10.0"}) == 3
    assert _value(samples, "botmox_api_request_duration_seconds_sum", labels) > 0
    assert _requests(samples, "GET", "/api/v1/health/live", 200, backend="supabase") == 3


@pytest.mark.parametrize("direct", [True, False], ids=["direct-route", "fastapi-route"])
async def test_a_failing_store_is_a_5xx_and_a_store_error(direct: bool) -> None:
    stores = memory_store_set()
    # GET of the policy is the direct route's; the whole tree is FastAPI's, through the same mapping.
    path = POLICY if direct else "/api/v1/settings"
    async with client_for(make_settings(), stores) as client:
        stores.storage_policy.failure = StoreQueryFailed("rtdb", "boom", details={"reason": "down"})  # type: ignore[attr-defined]
        read = await client.get(path, headers=A)
        assert read.status_code == 502
        write = await client.patch(POLICY, headers=A, json={"operational": "local"})
        assert write.status_code == 502
        samples = await _samples(client)
    assert _requests(samples, "GET", path, 502) == 1
    assert _requests(samples, "PATCH", POLICY, 502) == 1
    for operation in ("read", "write"):
        labels = {"store": "storage_policy", "operation": operation, "kind": "query_failed"}
        assert _value(samples, "botmox_api_store_errors_total", labels) == 1


async def test_a_store_not_configured_is_counted_and_a_version_conflict_is_not() -> None:
    stores = memory_store_set()
    async with client_for(make_settings(), stores) as client:
        stores.settings.failure = StoreNotConfigured("rtdb", "RTDB is not configured")  # type: ignore[attr-defined]
        assert (await client.get("/api/v1/settings/alerts", headers=A)).status_code == 503
        stores.settings.failure = None  # type: ignore[attr-defined]
        stale = await client.put(POLICY, headers={**A, "If-Match": '"999"'}, json={"operational": "local"})
        assert stale.status_code == 412
        samples = await _samples(client)
    labels = {"store": "settings", "operation": "read", "kind": "not_configured"}
    assert _value(samples, "botmox_api_store_errors_total", labels) == 1
    assert _requests(samples, "PUT", POLICY, 412) == 1
    store_errors = [name for name, _ in samples if name == "botmox_api_store_errors_total"]
    assert len(store_errors) == 1


def test_templates_prefer_the_routers_choice_and_fall_back_to_the_paths() -> None:
    router = APIRouter()

    @router.get("/items/{item_id}")
    async def item(item_id: str) -> None: ...

    @router.get("/items/all")
    async def all_items() -> None: ...

    templates = RouteTemplates([RoutedPrefix("/api", router.routes)], direct_paths=("/api/direct",))
    chosen = router.routes[1]  # what the router left in the scope
    assert templates.of({"path": "/api/items/all", "route": chosen}) == "/api/items/all"
    assert templates.of({"path": "/api/items/all"}) == "/api/items/all"  # static first
    assert templates.of({"path": "/api/items/42"}) == "/api/items/{item_id}"
    assert templates.of({"path": "/api/direct"}) == "/api/direct"
    assert templates.of({"path": "/api/items/4/2"}) == "unmatched"


def test_the_deploys_alert_rules_query_these_names_and_labels() -> None:
    rules = (Path(__file__).parents[3] / "deploy/tasks/templates/prometheus/botmox-rules.yml.j2").read_text()
    metrics = ApiMetrics()
    request_metrics = RequestMetrics(metrics, backend="rtdb", templates=RouteTemplates([]))
    request_metrics.observe({"method": "GET", "path": "/x"}, 500, 0.01)
    request_metrics.store_failed(StoreFailure("settings", "read", "query_failed"))
    # Every series the API writes, with the labels it carries (a bucket's "le" included).
    labels_of = {
        sample.name: set(sample.labels) for family in metrics.registry.collect() for sample in family.samples
    }
    queried = re.findall(r"\b(botmox_api_\w+)(?:\{([^}]*)\})?", rules)
    assert queried, "the rules query no API series"
    for name, selector in queried:
        assert name in labels_of, name
        used = set(re.findall(r"(\w+)\s*(?:=~|!~|!=|=)", selector))
        assert used <= labels_of[name], (name, used)
