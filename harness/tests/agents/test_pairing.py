"""Pairing against the API the harness started: a code is single use, expires, and binds the agent to
the tenant that created it whatever the registration claims (issue 16, Tests: "Pairing")."""

from __future__ import annotations

import hashlib
from collections.abc import Callable

import pytest
from agent_suite import Tenant

from harness.fixtures.agents_api import AgentsApi, registration_body
from harness.fixtures.cli_stack import StackUnderTest

pytestmark = pytest.mark.integration

REFUSED_CODE = "Pairing code refused: unknown, expired or already used"


def _refused(response_status: int, body: dict[str, object]) -> None:
    assert response_status == 401, body
    assert body["error"] == {"code": "UNAUTHORIZED", "message": REFUSED_CODE}


def test_a_code_registers_one_agent_of_its_tenant(api: AgentsApi, tenant: Callable[[], Tenant]) -> None:
    owner = tenant()
    code = api.create_pairing(owner.token)
    agent = api.register(code, "pair-once")
    assert agent.tenant_id == owner.tenant_id
    listed = api.agents(owner.token)
    assert list(listed) == [agent.agent_id]
    assert listed[agent.agent_id]["name"] == "pair-once"
    assert listed[agent.agent_id]["revoked_at"] is None


def test_a_reused_code_is_refused_and_makes_no_second_agent(
    api: AgentsApi, tenant: Callable[[], Tenant]
) -> None:
    owner = tenant()
    code = api.create_pairing(owner.token)
    first = api.register(code, "first")
    again = api.register_response(registration_body(code, "second"))
    _refused(again.status_code, again.json())
    assert list(api.agents(owner.token)) == [first.agent_id]


def test_an_expired_code_is_refused(
    api: AgentsApi, tenant: Callable[[], Tenant], agent_stack: StackUnderTest
) -> None:
    owner = tenant()
    code = api.create_pairing(owner.token)
    # Eleven minutes ago, as the database's superuser (the expiry check ties expires_at to created_at).
    aged = agent_stack.sql(
        "update public.agent_pairings set created_at = now() - interval '11 minutes',"
        " expires_at = now() - interval '1 minute' where code_hash = %s returning id",
        (hashlib.sha256(code.encode()).digest(),),
    )
    assert len(aged) == 1
    refused = api.register_response(registration_body(code, "too-late"))
    _refused(refused.status_code, refused.json())
    assert api.agents(owner.token) == {}


def test_an_unknown_code_is_refused(api: AgentsApi) -> None:
    refused = api.register_response(registration_body("x" * 43, "guess"))
    _refused(refused.status_code, refused.json())


def test_a_code_binds_its_own_tenant_whatever_the_registration_says(
    api: AgentsApi, tenant: Callable[[], Tenant]
) -> None:
    """A foreign tenant cannot be reached with a code: the registration names no tenant (a member
    saying otherwise is ignored), the agent joins the code's tenant and only that one."""
    owner, foreign = tenant(), tenant()
    code = api.create_pairing(owner.token)
    body = {**registration_body(code, "claims-foreign"), "tenant_id": foreign.tenant_id}
    response = api.register_response(body)
    assert response.status_code == 201, response.text
    agent_id = response.json()["data"]["agent_id"]
    assert response.json()["data"]["tenant_id"] == owner.tenant_id
    assert list(api.agents(owner.token)) == [agent_id]
    assert api.agents(foreign.token) == {}
    # And the foreign tenant's own code, used after the owner's, makes an agent of the foreign tenant.
    other = api.register(api.create_pairing(foreign.token), "foreign-own")
    assert other.tenant_id == foreign.tenant_id
    assert list(api.agents(owner.token)) == [agent_id]


def test_only_an_admin_creates_codes(api: AgentsApi, agent_stack: StackUnderTest) -> None:
    """The printed demo token is a user with the api role, not an admin."""
    response = api._client.post(
        "/api/v1/agents/pairings", headers={"Authorization": f"Bearer {agent_stack.printed.token}"}
    )
    assert response.status_code == 403, response.text
