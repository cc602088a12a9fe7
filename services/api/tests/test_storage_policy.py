"""``storage_policy`` on the real stores, in both modes and over both Supabase transports
(``docs/contracts/api-v1.md``, "storage_policy"): ``supabase-rest`` runs the same contract through the
REST transport, its PostgREST calls answered from the real migration by the harness's stand-in."""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest
from api_support import REST_MODES, data, error_code, user

pytestmark = pytest.mark.integration

A = user("tenant-a")


@pytest.fixture(params=REST_MODES)
def api_mode(request: pytest.FixtureRequest) -> str:
    return str(request.param)


URL = "/api/v1/settings/storage_policy"


async def test_nothing_stored_is_null_without_etag(api: httpx.AsyncClient) -> None:
    response = await api.get(URL, headers=A)
    assert response.json() == {"success": True, "data": None}
    assert "etag" not in response.headers


async def test_put_takes_defaults_and_returns_etag(api: httpx.AsyncClient) -> None:
    response = await api.put(URL, headers=A, json={"secrets": "local-only", "updated_by": "x", "junk": 1})
    assert response.status_code == 200
    document = data(response)
    assert document["secrets"] == "local-only"
    assert document["operational"] == "cloud"
    assert document["sync"] == {"enabled": False}
    assert document["updated_by"] == "user-1"
    assert isinstance(document["updated_at"], int)
    assert set(document) == {"secrets", "operational", "sync", "updated_at", "updated_by"}
    etag = response.headers["etag"]
    read = await api.get(URL, headers=A)
    assert read.headers["etag"] == etag
    assert data(read) == document


async def test_patch_merges_and_put_replaces(api: httpx.AsyncClient) -> None:
    first = data(await api.patch(URL, headers=A, json={"sync": {"enabled": True}}))
    assert first["operational"] == "cloud"
    assert first["sync"] == {"enabled": True}
    second = data(await api.patch(URL, headers=A, json={"operational": "local"}))
    assert second["operational"] == "local"
    assert second["sync"] == {"enabled": True}
    third = data(await api.put(URL, headers=A, json={"operational": "local"}))
    assert third["sync"] == {"enabled": False}


async def test_every_write_bumps_the_version(api: httpx.AsyncClient) -> None:
    tags = [
        (await api.patch(URL, headers=A, json={"operational": "local"})).headers["etag"] for _ in range(3)
    ]
    assert len(set(tags)) == 3
    assert all(tag.startswith('"') and tag.endswith('"') for tag in tags)


async def test_if_match(api: httpx.AsyncClient) -> None:
    # nothing stored: nothing matches, "*" included
    for tag in ('"1"', "*"):
        response = await api.put(URL, headers={**A, "If-Match": tag}, json={"operational": "local"})
        assert response.status_code == 412
        assert error_code(response) == "PRECONDITION_FAILED"
    assert data(await api.get(URL, headers=A)) is None
    etag = (await api.put(URL, headers=A, json={"operational": "local"})).headers["etag"]
    stale = await api.patch(URL, headers={**A, "If-Match": '"999999"'}, json={"operational": "cloud"})
    assert stale.status_code == 412
    weak = await api.patch(URL, headers={**A, "If-Match": f"W/{etag}"}, json={"operational": "cloud"})
    assert weak.status_code == 412
    assert data(await api.get(URL, headers=A))["operational"] == "local"  # nothing changed
    listed = await api.patch(
        URL, headers={**A, "If-Match": f'"999999", {etag}'}, json={"operational": "cloud"}
    )
    assert listed.status_code == 200
    star = await api.patch(URL, headers={**A, "If-Match": "*"}, json={"sync": {"enabled": True}})
    assert star.status_code == 200
    assert data(star) | {"updated_at": 0} == {
        "secrets": "local-only",
        "operational": "cloud",
        "sync": {"enabled": True},
        "updated_at": 0,
        "updated_by": "user-1",
    }


@pytest.mark.parametrize(
    ("body", "details"),
    [
        ({}, {"formErrors": ["Storage policy payload must not be empty"], "fieldErrors": {}}),
        (
            {"updated_at": 1, "other": 2},
            {"formErrors": ["Storage policy payload must not be empty"], "fieldErrors": {}},
        ),
        ([], {"formErrors": ["Expected object, received array"], "fieldErrors": {}}),
        ("x", {"formErrors": ["Expected object, received string"], "fieldErrors": {}}),
        (1, {"formErrors": ["Expected object, received number"], "fieldErrors": {}}),
        (True, {"formErrors": ["Expected object, received boolean"], "fieldErrors": {}}),
        (None, {"formErrors": ["Expected object, received null"], "fieldErrors": {}}),
        (
            {"operational": "x"},
            {
                "formErrors": [],
                "fieldErrors": {
                    "operational": ["Invalid enum value. Expected 'local' | 'cloud', received 'x'"]
                },
            },
        ),
        ({"sync": {}}, {"formErrors": [], "fieldErrors": {"sync.enabled": ["Required"]}}),
        ({"sync": True}, {"formErrors": [], "fieldErrors": {"sync": ["Expected object, received boolean"]}}),
        (
            {"sync": {"enabled": "yes"}},
            {"formErrors": [], "fieldErrors": {"sync.enabled": ["Expected boolean, received string"]}},
        ),
        (
            {"secrets": "cloud"},
            {"formErrors": [], "fieldErrors": {"secrets": ['Invalid literal value, expected "local-only"']}},
        ),
    ],
)
async def test_invalid_bodies(api: httpx.AsyncClient, body: object, details: object) -> None:
    for method in ("PUT", "PATCH"):
        response = await api.request(
            method, URL, headers={**A, "Content-Type": "application/json"}, content=json.dumps(body).encode()
        )
        assert response.status_code == 400
        error = response.json()["error"]
        assert (error["code"], error["message"], error["details"]) == (
            "BAD_REQUEST",
            "Invalid request body",
            details,
        )
    assert data(await api.get(URL, headers=A)) is None


async def test_body_rules_in_order(api: httpx.AsyncClient) -> None:
    big = b'{"operational": "local", "pad": "' + b"x" * 70_000 + b'"}'
    response = await api.put(URL, headers={**A, "Content-Type": "text/plain"}, content=big)
    assert response.status_code == 413
    assert error_code(response) == "PAYLOAD_TOO_LARGE"
    response = await api.put(URL, headers={**A, "Content-Type": "text/plain"}, content=b"{")
    assert response.status_code == 415
    assert error_code(response) == "UNSUPPORTED_MEDIA_TYPE"
    response = await api.put(URL, headers={**A, "Content-Type": "application/json"}, content=b"{")
    assert response.status_code == 400
    assert response.json()["error"]["message"] == "Malformed JSON body"
    for media_type in ("Application/JSON; charset=utf-8", "application/merge-patch+json"):
        response = await api.patch(
            URL, headers={**A, "Content-Type": media_type}, content=b'{"operational": "local"}'
        )
        assert response.status_code == 200, media_type


async def test_frontend_prefix_reaches_the_same_document(api: httpx.AsyncClient) -> None:
    await api.put("/api/v1/settings/settings/storage_policy", headers=A, json={"operational": "local"})
    assert data(await api.get(URL, headers=A))["operational"] == "local"
    assert data(await api.get(URL + "/", headers=A))["operational"] == "local"


async def test_concurrent_patches_lose_no_update(api: httpx.AsyncClient) -> None:
    await api.put(URL, headers=A, json={"operational": "cloud"})
    bodies = [{"operational": "local"}, {"sync": {"enabled": True}}] * 10
    responses = await asyncio.gather(*(api.patch(URL, headers=A, json=body) for body in bodies))
    assert all(r.status_code == 200 for r in responses)
    document = data(await api.get(URL, headers=A))
    assert document["operational"] == "local"
    assert document["sync"] == {"enabled": True}


async def test_racing_if_match_writes_have_one_winner(api: httpx.AsyncClient) -> None:
    etag = (await api.put(URL, headers=A, json={"operational": "cloud"})).headers["etag"]
    responses = await asyncio.gather(
        *(
            api.patch(URL, headers={**A, "If-Match": etag}, json={"sync": {"enabled": i % 2 == 0}})
            for i in range(10)
        )
    )
    statuses = sorted(r.status_code for r in responses)
    assert statuses == [200] + [412] * 9
