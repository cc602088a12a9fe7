"""Generic settings paths, on the real stores, in both modes (``docs/contracts/api-v1.md``, "Settings")."""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest
from api_support import API_TOKEN, bearer, data, error_code, user

pytestmark = pytest.mark.integration

A = user("tenant-a")
B = user("tenant-b", sub="user-2")


async def test_empty_tree_is_an_empty_object(api: httpx.AsyncClient) -> None:
    response = await api.get("/api/v1/settings", headers=A)
    assert response.status_code == 200
    assert response.json() == {"success": True, "data": {}}


async def test_put_merges_one_level_and_sets_updated_at(api: httpx.AsyncClient) -> None:
    first = await api.put("/api/v1/settings/generators", headers=A, json={"a": {"x": 1}, "b": 2})
    assert first.status_code == 200
    node = data(first)
    assert node["a"] == {"x": 1}
    assert node["b"] == 2
    assert isinstance(node["updated_at"], int)
    second = await api.patch("/api/v1/settings/generators", headers=A, json={"a": {"y": 2}, "b": None})
    node = data(second)
    # one level deep: "a" is replaced, not merged; a null child deletes it
    assert node["a"] == {"y": 2}
    assert "b" not in node
    assert data(await api.get("/api/v1/settings/generators/a/y", headers=A)) == 2


async def test_non_object_body_replaces_the_node(api: httpx.AsyncClient) -> None:
    await api.put("/api/v1/settings/theme", headers=A, json={"mode": "dark"})
    response = await api.put("/api/v1/settings/theme", headers=A, json="light")
    assert data(response) == "light"
    assert data(await api.get("/api/v1/settings/theme", headers=A)) == "light"


async def test_empty_object_body_is_refused(api: httpx.AsyncClient) -> None:
    response = await api.patch("/api/v1/settings/theme", headers=A, json={})
    assert response.status_code == 400
    assert response.json()["error"]["details"] == {
        "formErrors": ["Payload must contain at least one field"],
        "fieldErrors": {},
    }


async def test_values_are_stored_the_rtdb_way(api: httpx.AsyncClient) -> None:
    response = await api.put("/api/v1/settings/misc", headers=A, json={"empty": {}, "list": [], "keep": 1})
    node = data(response)
    assert "empty" not in node
    assert "list" not in node
    assert node["keep"] == 1


async def test_frontend_prefix_and_whole_tree(api: httpx.AsyncClient) -> None:
    await api.put("/api/v1/settings/settings/generators/g1", headers=A, json={"on": True})
    assert data(await api.get("/api/v1/settings/generators/g1/on", headers=A)) is True
    tree = data(await api.get("/api/v1/settings/settings", headers=A))
    assert tree["generators"]["g1"]["on"] is True
    for path in ("/api/v1/settings", "/api/v1/settings/settings", "/api/v1/settings/"):
        response = await api.put(path, headers=A, json={"x": 1})
        assert response.status_code == 405, path
        assert response.headers["allow"] == "GET"
        assert error_code(response) == "METHOD_NOT_ALLOWED"


async def test_whole_tree_includes_storage_policy_document(api: httpx.AsyncClient) -> None:
    await api.put("/api/v1/settings/storage_policy", headers=A, json={"operational": "local"})
    await api.put("/api/v1/settings/alerts", headers=A, json={"warning_days": 7})
    tree = data(await api.get("/api/v1/settings", headers=A))
    assert set(tree["storage_policy"]) == {"secrets", "operational", "sync", "updated_at", "updated_by"}
    assert tree["storage_policy"]["operational"] == "local"
    assert tree["alerts"]["warning_days"] == 7


@pytest.mark.parametrize(
    ("path", "reason"),
    [
        ("a/%2E/b", "Invalid path segment: ."),
        ("a/%2E%2E/b", "Invalid path segment: .."),
        ("a/b.c", "Invalid path segment: b.c"),
        ("a/b%23", "Invalid path segment: b#"),
        ("a/%24x", "Invalid path segment: $x"),
        ("a/%5Bx%5D", "Invalid path segment: [x]"),
        ("a//b", "Invalid path segment: "),
        ("a/%01", "Invalid path segment: \x01"),
        ("a%0Ab", "Invalid path segment: a\nb"),  # a newline is still a path, not an unknown route
        ("%1C", "Invalid path segment: \x1c"),  # trimmed like JavaScript's trim(), not str.strip()
        ("/".join(["s"] * 30), "Too many path segments (max 29)"),
        ("/".join(["s" * 30] * 30), "Too many path segments (max 29)"),  # before "too long"
        ("/".join(["s" * 100] * 8), "Path too long (max 768 bytes)"),
        ("storage_policy/sync", "storage_policy is written as a whole document"),
        ("settings/storage_policy/sync", "storage_policy is written as a whole document"),
        ("/".join(["s"] * 30) + "/b.c", "Invalid path segment: b.c"),
    ],
)
async def test_invalid_paths(api: httpx.AsyncClient, path: str, reason: str) -> None:
    for method in ("GET", "PUT"):
        response = await api.request(method, f"/api/v1/settings/{path}", headers=A, json={"x": 1})
        assert response.status_code == 400, (method, path)
        error = response.json()["error"]
        assert error["message"] == "Invalid settings path"
        assert error["details"]["reason"] == reason


@pytest.mark.parametrize(("encoded", "key"), [("a%2520b", "a%20b"), ("x%3Fy", "x?y"), ("50%25", "50%")])
async def test_unusual_but_valid_segments_round_trip(api: httpx.AsyncClient, encoded: str, key: str) -> None:
    written = await api.put(f"/api/v1/settings/odd/{encoded}", headers=A, json={"v": 1})
    assert written.status_code == 200
    tree = await api.get("/api/v1/settings/odd", headers=A)
    assert list(tree.json()["data"]) == [key]


async def test_invalid_path_reports_path_as_received(api: httpx.AsyncClient) -> None:
    response = await api.get("/api/v1/settings/%20a/b.c/", headers=A)
    assert response.json()["error"]["details"] == {"path": " a/b.c/", "reason": "Invalid path segment: b.c"}


@pytest.mark.parametrize(
    ("path", "body", "field", "message"),
    [
        ("alerts", {"warning_days": 0}, "warning_days", "Number must be greater than or equal to 1"),
        ("alerts", {"warning_days": 366}, "warning_days", "Number must be less than or equal to 365"),
        ("alerts", {"warning_days": 7.5}, "warning_days", "Expected integer, received float"),
        ("alerts", {"warning_days": "7"}, "warning_days", "Expected number, received string"),
        ("alerts", {"warning_days": True}, "warning_days", "Expected number, received boolean"),
        (
            "proxy",
            {"fraud_score_threshold": 101},
            "fraud_score_threshold",
            "Number must be less than or equal to 100",
        ),
        (
            "proxy",
            {"check_interval_hours": -1},
            "check_interval_hours",
            "Number must be greater than or equal to 0",
        ),
        (
            "proxy",
            {"check_interval_hours": 169},
            "check_interval_hours",
            "Number must be less than or equal to 168",
        ),
    ],
)
async def test_bounded_fields_on_parent(
    api: httpx.AsyncClient, path: str, body: dict[str, object], field: str, message: str
) -> None:
    for method in ("PUT", "PATCH"):
        response = await api.request(method, f"/api/v1/settings/{path}", headers=A, json=body)
        assert response.status_code == 400
        assert message in response.json()["error"]["details"]["fieldErrors"][field]
    assert data(await api.get(f"/api/v1/settings/{path}", headers=A)) is None  # nothing stored


async def test_bounded_field_addressed_directly(api: httpx.AsyncClient) -> None:
    response = await api.put("/api/v1/settings/alerts/warning_days", headers=A, json=0)
    assert response.status_code == 400
    assert response.json()["error"]["details"]["formErrors"] == ["Number must be greater than or equal to 1"]
    assert data(await api.put("/api/v1/settings/alerts/warning_days", headers=A, json=7.0)) == 7
    before_ms = int(time.time() * 1000)
    node = data(await api.put("/api/v1/settings/alerts", headers=A, json={"warning_days": 365}))
    after_ms = int(time.time() * 1000)
    assert node.keys() == {"warning_days", "updated_at"}
    assert node["warning_days"] == 365
    assert before_ms <= node["updated_at"] <= after_ms  # the write's own time, in epoch milliseconds


async def test_null_on_bounded_field_deletes_it(api: httpx.AsyncClient) -> None:
    await api.put("/api/v1/settings/alerts", headers=A, json={"warning_days": 5, "other": 1})
    node = data(await api.patch("/api/v1/settings/alerts", headers=A, json={"warning_days": None}))
    assert "warning_days" not in node
    assert node["other"] == 1


async def test_invalid_keys_are_refused_before_the_store(api: httpx.AsyncClient) -> None:
    response = await api.put("/api/v1/settings/misc", headers=A, json={"a.b": 1, "ok": {"c$": 2}})
    assert response.status_code == 400
    assert set(response.json()["error"]["details"]["fieldErrors"]) == {"a.b", "ok.c$"}
    assert data(await api.get("/api/v1/settings/misc", headers=A)) is None


async def test_if_match_is_ignored_on_generic_paths(api: httpx.AsyncClient) -> None:
    response = await api.put("/api/v1/settings/theme", headers={**A, "If-Match": '"999"'}, json={"m": 1})
    assert response.status_code == 200


async def test_tenants_are_isolated(api: httpx.AsyncClient) -> None:
    await api.put("/api/v1/settings/theme", headers=A, json={"mode": "dark"})
    await api.put("/api/v1/settings/storage_policy", headers=A, json={"operational": "local"})
    assert data(await api.get("/api/v1/settings", headers=B)) == {}
    assert data(await api.get("/api/v1/settings/theme", headers=B)) is None
    assert data(await api.get("/api/v1/settings/storage_policy", headers=B)) is None
    # internal tokens are the default tenant, never tenant-a
    assert data(await api.get("/api/v1/settings/theme", headers=bearer(API_TOKEN))) is None


async def test_concurrent_patches_of_different_children_lose_nothing(api: httpx.AsyncClient) -> None:
    fields = [f"f{i}" for i in range(40)]
    responses = await asyncio.gather(
        *(api.patch("/api/v1/settings/bulk", headers=A, json={name: i}) for i, name in enumerate(fields))
    )
    assert all(r.status_code == 200 for r in responses)
    node = data(await api.get("/api/v1/settings/bulk", headers=A))
    assert all(node[name] == i for i, name in enumerate(fields))
