"""The agent endpoints over an in-memory agents store: every status and error the routes answer.
The SQL store is tested on PostgreSQL (``stores/test_agents_sql.py``)."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from api_fakes import MemoryAgentStore, memory_store_set
from api_support import (
    INFRA_TOKEN,
    bearer,
    client_for,
    data,
    error_code,
    make_settings,
    supabase_token,
    user,
)

from botmox_api.agents import AgentRefused
from botmox_api.errors import from_agent_refusal
from botmox_api.model import StoreQueryFailed
from botmox_api.stores.protocols import StoreSet

CAPABILITIES = ["syncthing.status", "proxmox.vm.start"]


def admin(tenant: str = "tenant-a", sub: str = "admin-1") -> dict[str, str]:
    return bearer(supabase_token(tenant, sub=sub, app_metadata={"roles": ["admin"]}))


@pytest.fixture
def stores() -> StoreSet:
    return memory_store_set()


@pytest.fixture
def agents(stores: StoreSet) -> MemoryAgentStore:
    assert isinstance(stores.agents, MemoryAgentStore)
    return stores.agents


@pytest.fixture
async def client(stores: StoreSet) -> AsyncIterator[httpx.AsyncClient]:
    async with client_for(make_settings(), stores) as client:
        yield client


async def pair(client: httpx.AsyncClient, tenant: str = "tenant-a") -> str:
    response = await client.post("/api/v1/agents/pairings", headers=admin(tenant))
    assert response.status_code == 201, response.text
    return str(data(response)["code"])


async def register(
    client: httpx.AsyncClient, code: str, capabilities: list[str] | None = None
) -> httpx.Response:
    body = {
        "code": code,
        "name": "pve-host",
        "version": "1.0.0",
        "capabilities": capabilities or CAPABILITIES,
    }
    return await client.post("/api/v1/agents/register", json=body)


async def new_agent(client: httpx.AsyncClient, tenant: str = "tenant-a") -> dict[str, Any]:
    response = await register(client, await pair(client, tenant))
    assert response.status_code == 201, response.text
    registered: dict[str, Any] = data(response)
    return registered


# --- Pairing.


async def test_an_admin_gets_a_code_once_and_the_store_only_its_digest(
    client: httpx.AsyncClient, agents: MemoryAgentStore
) -> None:
    response = await client.post("/api/v1/agents/pairings", headers=admin())
    assert response.status_code == 201
    body = data(response)
    assert len(body["code"]) >= 43  # 256 bits, URL-safe base64
    assert body["expires_at"] == "2026-12-06T12:10:00Z"
    assert list(agents.pairings) == [hashlib.sha256(body["code"].encode()).digest()]


async def test_the_internal_infra_token_is_an_admin(client: httpx.AsyncClient) -> None:
    response = await client.post("/api/v1/agents/pairings", headers=bearer(INFRA_TOKEN))
    assert response.status_code == 201


async def test_a_user_without_the_admin_role_may_not_pair(
    client: httpx.AsyncClient, agents: MemoryAgentStore
) -> None:
    response = await client.post("/api/v1/agents/pairings", headers=user())
    assert response.status_code == 403
    assert error_code(response) == "FORBIDDEN"
    assert response.json()["error"]["message"] == "Role admin is required"
    assert agents.calls == []


async def test_pairing_needs_a_token(client: httpx.AsyncClient) -> None:
    response = await client.post("/api/v1/agents/pairings")
    assert response.status_code == 401
    assert error_code(response) == "UNAUTHORIZED"


# --- Registration.


async def test_a_code_registers_an_agent_of_its_tenant_without_a_token(
    client: httpx.AsyncClient, agents: MemoryAgentStore
) -> None:
    code = await pair(client, "tenant-b")
    response = await register(client, code)
    assert response.status_code == 201
    body = data(response)
    assert body["tenant_id"] == "tenant-b"
    assert body["capabilities"] == CAPABILITIES
    assert len(body["credential"]) >= 43
    stored = agents.agents[body["agent_id"]]
    assert stored.credential_hash == hashlib.sha256(body["credential"].encode()).digest()
    assert body["credential"] != code


async def test_a_code_used_twice_is_refused(client: httpx.AsyncClient) -> None:
    code = await pair(client)
    assert (await register(client, code)).status_code == 201
    again = await register(client, code)
    assert again.status_code == 401
    assert error_code(again) == "UNAUTHORIZED"
    assert again.json()["error"]["message"] == "Pairing code refused: unknown, expired or already used"


async def test_an_expired_or_unknown_code_gets_the_same_answer(
    client: httpx.AsyncClient, agents: MemoryAgentStore
) -> None:
    code = await pair(client)
    agents.expire(hashlib.sha256(code.encode()).digest())
    expired = await register(client, code)
    unknown = await register(client, "no-such-code")
    assert expired.status_code == unknown.status_code == 401
    assert expired.json()["error"] == unknown.json()["error"]


@pytest.mark.parametrize(
    ("body", "field", "message"),
    [
        ({"name": "a", "version": "1"}, "code", "Required"),
        ({"code": 1, "name": "a", "version": "1"}, "code", "Expected string, received number"),
        (
            {"code": "c", "name": " ", "version": "1"},
            "name",
            "String must contain at least 1 non-blank character(s)",
        ),
        (
            {"code": "c", "name": "a" * 101, "version": "1"},
            "name",
            "String must contain at most 100 character(s)",
        ),
        ({"code": "c", "name": "a"}, "version", "Required"),
        (
            {"code": "c", "name": "a", "version": "1", "capabilities": "x"},
            "capabilities",
            "Expected array, received string",
        ),
        (
            {
                "code": "c",
                "name": "a",
                "version": "1",
                "capabilities": ["syncthing.status", "syncthing.status"],
            },
            "capabilities.1",
            "Duplicate capability",
        ),
    ],
)
async def test_an_invalid_registration_is_a_400_naming_the_field(
    client: httpx.AsyncClient, agents: MemoryAgentStore, body: dict[str, Any], field: str, message: str
) -> None:
    response = await client.post("/api/v1/agents/register", json=body)
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "BAD_REQUEST"
    assert error["message"] == "Invalid request body"
    assert message in error["details"]["fieldErrors"][field]
    assert agents.calls == []


async def test_a_registration_body_must_be_json(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/api/v1/agents/register", content=b"code=x", headers={"Content-Type": "text/plain"}
    )
    assert response.status_code == 415
    array = await client.post("/api/v1/agents/register", json=[])
    assert array.status_code == 400
    assert array.json()["error"]["details"]["formErrors"] == ["Expected object, received array"]


async def test_a_capability_off_the_allowlist_is_the_databases_400(client: httpx.AsyncClient) -> None:
    response = await register(client, await pair(client), ["rm.rf"])
    assert response.status_code == 400
    assert error_code(response) == "BAD_REQUEST"
    assert "allowlisted command kinds" in response.json()["error"]["message"]


# --- Listing and revoking.


async def test_a_tenant_lists_its_own_agents_only(
    client: httpx.AsyncClient, agents: MemoryAgentStore
) -> None:
    mine = await new_agent(client, "tenant-a")
    await new_agent(client, "tenant-b")
    listed = data(await client.get("/api/v1/agents", headers=user("tenant-a")))
    assert [agent["id"] for agent in listed] == [mine["agent_id"]]
    assert listed[0]["online"] is False
    assert listed[0]["last_seen_at"] is None
    assert listed[0]["version"] == "1.0.0"
    agents.connect(mine["agent_id"])
    listed = data(await client.get("/api/v1/agents", headers=user("tenant-a")))
    assert listed[0]["online"] is True
    assert listed[0]["last_seen_at"] == "2026-12-06T12:00:00Z"
    assert "credential" not in listed[0]


async def test_an_admin_revokes_an_agent_once(client: httpx.AsyncClient, agents: MemoryAgentStore) -> None:
    agent = await new_agent(client)
    agents.connect(agent["agent_id"])
    url = f"/api/v1/agents/{agent['agent_id']}/revoke"
    response = await client.post(url, headers=admin())
    assert response.status_code == 200
    assert data(response)["revoked_by"] == "admin-1"
    listed = data(await client.get("/api/v1/agents", headers=user()))
    assert listed[0]["online"] is False
    assert listed[0]["revoked_at"] == "2026-12-06T12:00:00Z"
    again = await client.post(url, headers=admin(sub="admin-2"))
    assert data(again)["revoked_by"] == "admin-1"
    assert data(again)["cancelled_commands"] == 0


async def test_revoking_needs_an_admin_of_the_agents_tenant(client: httpx.AsyncClient) -> None:
    agent = await new_agent(client)
    url = f"/api/v1/agents/{agent['agent_id']}/revoke"
    assert (await client.post(url, headers=user())).status_code == 403
    foreign = await client.post(url, headers=admin("tenant-b"))
    assert foreign.status_code == 404
    assert foreign.json()["error"] == {"code": "NOT_FOUND", "message": "Agent not found"}
    malformed = await client.post("/api/v1/agents/not-a-uuid/revoke", headers=admin())
    assert malformed.status_code == 400
    assert error_code(malformed) == "BAD_REQUEST"


# --- Commands.


async def test_a_command_for_a_connected_agent_is_queued_and_read_back(
    client: httpx.AsyncClient, agents: MemoryAgentStore
) -> None:
    agent = await new_agent(client)
    agents.connect(agent["agent_id"])
    base = f"/api/v1/agents/{agent['agent_id']}/commands"
    response = await client.post(
        base, headers=user(), json={"kind": "proxmox.vm.start", "params": {"vmid": 101}}
    )
    assert response.status_code == 201
    command = data(response)
    assert command["status"] == "queued"
    assert command["params"] == {"vmid": 101}
    assert command["deadline"] == "2026-12-06T12:05:00Z"  # the default deadline, 300 s
    assert command["result"] is None
    assert command["error"] is None
    read = await client.get(f"{base}/{command['id']}", headers=user())
    assert read.status_code == 200
    assert data(read) == command


async def test_a_command_for_an_offline_agent_is_409_agent_offline_at_once(
    client: httpx.AsyncClient, agents: MemoryAgentStore
) -> None:
    agent = await new_agent(client)
    response = await client.post(
        f"/api/v1/agents/{agent['agent_id']}/commands", headers=user(), json={"kind": "syncthing.status"}
    )
    assert response.status_code == 409
    error = response.json()["error"]
    assert error["code"] == "AGENT_OFFLINE"
    assert error["details"] == {"last_seen_at": None}
    assert agents.commands == {}


async def test_a_command_for_a_revoked_agent_is_409_agent_revoked(
    client: httpx.AsyncClient, agents: MemoryAgentStore
) -> None:
    agent = await new_agent(client)
    await client.post(f"/api/v1/agents/{agent['agent_id']}/revoke", headers=admin())
    response = await client.post(
        f"/api/v1/agents/{agent['agent_id']}/commands", headers=user(), json={"kind": "syncthing.status"}
    )
    assert response.status_code == 409
    assert error_code(response) == "AGENT_REVOKED"


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"kind": "rm.rf"}, "Unknown command kind"),
        ({"kind": "proxmox.vm.clone"}, "Command kind not among the agent's capabilities"),
        ({"kind": "syncthing.status", "params": {"x": "a" * 17000}}, "Command params must be a JSON object"),
    ],
)
async def test_a_command_the_database_refuses_is_a_400_in_its_words(
    client: httpx.AsyncClient, agents: MemoryAgentStore, body: dict[str, Any], message: str
) -> None:
    agent = await new_agent(client)
    agents.connect(agent["agent_id"])
    response = await client.post(f"/api/v1/agents/{agent['agent_id']}/commands", headers=user(), json=body)
    assert response.status_code == 400
    assert response.json()["error"]["message"].startswith(message)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "kind"),
        ({"kind": "syncthing.status", "params": []}, "params"),
        ({"kind": "syncthing.status", "deadline_s": 0}, "deadline_s"),
        ({"kind": "syncthing.status", "deadline_s": 86401}, "deadline_s"),
        ({"kind": "syncthing.status", "deadline_s": "5"}, "deadline_s"),
    ],
)
async def test_an_invalid_command_body_is_a_400_naming_the_field(
    client: httpx.AsyncClient, agents: MemoryAgentStore, body: dict[str, Any], field: str
) -> None:
    agent = await new_agent(client)
    agents.calls.clear()
    response = await client.post(f"/api/v1/agents/{agent['agent_id']}/commands", headers=user(), json=body)
    assert response.status_code == 400
    assert field in response.json()["error"]["details"]["fieldErrors"]
    assert agents.calls == []


async def test_another_tenant_can_neither_command_nor_read(
    client: httpx.AsyncClient, agents: MemoryAgentStore
) -> None:
    agent = await new_agent(client)
    agents.connect(agent["agent_id"])
    base = f"/api/v1/agents/{agent['agent_id']}/commands"
    command = data(await client.post(base, headers=user(), json={"kind": "syncthing.status"}))
    foreign = await client.post(base, headers=user("tenant-b"), json={"kind": "syncthing.status"})
    assert foreign.status_code == 404
    assert foreign.json()["error"]["message"] == "Agent not found"
    read = await client.get(f"{base}/{command['id']}", headers=user("tenant-b"))
    assert read.status_code == 404
    assert read.json()["error"] == {"code": "NOT_FOUND", "message": "Command not found"}
    unknown = await client.get(f"{base}/{uuid.uuid4()}", headers=user())
    assert unknown.status_code == 404


async def test_any_principal_of_the_tenant_cancels_an_unfinished_command_once(
    client: httpx.AsyncClient, agents: MemoryAgentStore
) -> None:
    agent = await new_agent(client)
    agents.connect(agent["agent_id"])
    base = f"/api/v1/agents/{agent['agent_id']}/commands"
    command = data(await client.post(base, headers=user(), json={"kind": "syncthing.status"}))
    foreign = await client.post(f"{base}/{command['id']}/cancel", headers=user("tenant-b"))
    assert foreign.status_code == 404
    assert foreign.json()["error"] == {"code": "NOT_FOUND", "message": "Command not found"}
    cancelled = await client.post(f"{base}/{command['id']}/cancel", headers=user())
    assert cancelled.status_code == 200
    assert data(cancelled)["status"] == "cancelled"
    assert data(cancelled)["error"] == {"code": "CANCELLED", "message": "cancelled by user-1"}
    again = await client.post(f"{base}/{command['id']}/cancel", headers=user())
    assert again.status_code == 409
    assert again.json()["error"]["code"] == "CONFLICT"
    unknown = await client.post(f"{base}/{uuid.uuid4()}/cancel", headers=user())
    assert unknown.status_code == 404
    anonymous = await client.post(f"{base}/{command['id']}/cancel")
    assert anonymous.status_code == 401


# --- Backends.


async def test_every_agent_endpoint_answers_503_without_supabase_sql() -> None:
    """An rtdb-mode app without SUPABASE_DB_URL (the real stores): agents need Supabase over SQL."""
    agent_id = uuid.uuid4()
    calls = [
        ("POST", "/api/v1/agents/pairings", admin(), None),
        ("POST", "/api/v1/agents/register", {}, {"code": "c", "name": "a", "version": "1"}),
        ("GET", "/api/v1/agents", user(), None),
        ("POST", f"/api/v1/agents/{agent_id}/revoke", admin(), None),
        ("POST", f"/api/v1/agents/{agent_id}/commands", user(), {"kind": "syncthing.status"}),
        ("GET", f"/api/v1/agents/{agent_id}/commands/{uuid.uuid4()}", user(), None),
        ("POST", f"/api/v1/agents/{agent_id}/commands/{uuid.uuid4()}/cancel", user(), None),
    ]
    for settings in (
        make_settings(),
        make_settings(supabase_url="http://127.0.0.1:9", supabase_anon_key="k"),
    ):
        async with client_for(settings) as client:
            for method, url, headers, body in calls:
                response = await client.request(method, url, headers=headers, json=body)
                assert response.status_code == 503, (url, response.text)
                error = response.json()["error"]
                assert error["code"] == "SUPABASE_CONFIG_ERROR"
                assert error["details"] == {"missing": ["SUPABASE_DB_URL"]}


async def test_a_store_failure_is_a_502(client: httpx.AsyncClient, agents: MemoryAgentStore) -> None:
    agents.failure = StoreQueryFailed("supabase", "down", details={"reason": "Database unreachable"})
    response = await client.get("/api/v1/agents", headers=user())
    assert response.status_code == 502
    assert response.json()["error"]["code"] == "SUPABASE_QUERY_FAILED"
    assert response.json()["error"]["message"] == "Failed to read agents from Supabase"


async def test_registration_is_public_but_counted_per_client_address(stores: StoreSet) -> None:
    """No token is needed (the code is the credential), so guessing codes is throttled per address."""
    async with client_for(make_settings(api_rate_limit_max=3), stores) as client:
        answers = [(await register(client, f"guess-{n}")).status_code for n in range(4)]
    assert answers == [401, 401, 401, 429]


@pytest.mark.parametrize(
    ("sqlstate", "message", "detail", "status", "code"),
    [
        ("BM401", "agent pairing code refused", "unknown, expired or already used", 401, "UNAUTHORIZED"),
        ("BM403", "agent credential refused", None, 401, "UNAUTHORIZED"),
        ("BM404", "agent not found", "no such agent in this tenant", 404, "NOT_FOUND"),
        ("BM404", "command not found", "no such command in this tenant", 404, "NOT_FOUND"),
        ("BM409", "command status transition refused", "status=succeeded,to=cancelled", 409, "CONFLICT"),
        ("BM410", "agent revoked", None, 409, "AGENT_REVOKED"),
        ("BM422", "unknown command kind", None, 400, "BAD_REQUEST"),
        ("BM503", "agent offline", "last_seen_at=2026-12-06 11:00:00+00", 409, "AGENT_OFFLINE"),
        ("42501", "agent call without a tenant", None, 403, "FORBIDDEN"),
        ("22023", "connection id required", None, 400, "BAD_REQUEST"),
        ("23505", "duplicate key value violates unique constraint", None, 400, "BAD_REQUEST"),
        ("23514", "new row violates check constraint", None, 400, "BAD_REQUEST"),
    ],
)
def test_every_refusal_of_the_agents_sql_is_one_envelope_error(
    sqlstate: str, message: str, detail: str | None, status: int, code: str
) -> None:
    error = from_agent_refusal(AgentRefused(sqlstate, message, detail))
    assert (error.status, error.envelope_code) == (status, code)
    assert error.message[0].isupper()


def test_an_offline_refusal_carries_when_the_agent_was_last_seen() -> None:
    seen = from_agent_refusal(AgentRefused("BM503", "agent offline", "last_seen_at=2026-12-06 12:00:00.5+01"))
    never = from_agent_refusal(AgentRefused("BM503", "agent offline", "last_seen_at=never"))
    assert seen.details == {"last_seen_at": "2026-12-06T11:00:00.500000Z"}
    assert never.details == {"last_seen_at": None}
