"""Tenant isolation at the HTTP level, with a real agent of tenant B online and a command of B's in
the store: tenant A's admin can neither list, command, read the commands of nor revoke B's agent
(issue 16, Tests: "Tenant isolation"). The same rules as SQL, under RLS, are
supabase/tests/61_agents_isolation.sql and supabase/tests/test_agents.py; this is the API on top."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest
from agent_suite import AgentFactory, Tenant, finished_command
from real_agent import GatedExecutors

from harness.fixtures.agents_api import AgentsApi, command_body

pytestmark = pytest.mark.integration


def _not_found(response: httpx.Response, subject: str) -> None:
    assert response.status_code == 404, response.text
    assert response.json()["error"]["code"] == "NOT_FOUND"
    assert response.json()["error"]["message"] == f"{subject} not found"


def test_a_tenant_cannot_see_command_read_or_revoke_another_tenants_agent(
    agents: AgentFactory, api: AgentsApi, tenant: Callable[[], Tenant]
) -> None:
    tenant_a, tenant_b = tenant(), tenant()
    executors_b = GatedExecutors()
    agent_b = agents.start_with(tenant_b, "agent-of-b", executors_b)
    agent_a = agents.start_with(tenant_a, "agent-of-a", GatedExecutors())
    command_b = api.enqueue(tenant_b.token, agent_b.agent_id, "syncthing.status")
    assert finished_command(api, tenant_b.token, agent_b.agent_id, command_b["id"])["status"] == "succeeded"

    # List: each tenant sees its own agent only.
    assert list(api.agents(tenant_a.token)) == [agent_a.agent_id]
    assert list(api.agents(tenant_b.token)) == [agent_b.agent_id]
    # Command: B's agent is unknown to A (not "offline": its existence is not revealed).
    _not_found(
        api.enqueue_response(tenant_a.token, agent_b.agent_id, command_body("syncthing.status")), "Agent"
    )
    # Read: B's command, by B's agent's path or by A's own agent's path.
    _not_found(api.command_response(tenant_a.token, agent_b.agent_id, command_b["id"]), "Command")
    _not_found(api.command_response(tenant_a.token, agent_a.agent_id, command_b["id"]), "Command")
    # Revoke: refused, and B's agent keeps its connection.
    _not_found(api.revoke_response(tenant_a.token, agent_b.agent_id), "Agent")

    listed_b = api.agents(tenant_b.token)[agent_b.agent_id]
    assert listed_b["online"] is True
    assert listed_b["revoked_at"] is None
    assert executors_b.runs == {"syncthing.status": 1}
    assert api.command(tenant_b.token, agent_b.agent_id, command_b["id"])["status"] == "succeeded"
    agent_b.wait_connected()
