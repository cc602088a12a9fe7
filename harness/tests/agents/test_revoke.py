"""A revoked agent is cut off within a second and cannot come back (issue 16, Tests: "Pairing ... a
revoked agent is cut off within a second"), seen where it happens: the close frame the API sends
through the TLS proxy, the agent's own end, and a second start of the same agent."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest
from agent_suite import AgentFactory, Tenant, wait_until
from real_agent import GatedExecutors, InProcessAgent

from botmox_protocol import CloseCode
from harness.fixtures.agents_api import AgentsApi
from harness.fixtures.tls_proxy import TlsTerminatingProxy
from harness.fixtures.websocket_tap import Direction, TappedMessage

pytestmark = pytest.mark.integration

# The bound: from the revoke's answer to the close frame on the agent's connection.
CUT_OFF_BOUND_S = 1.0
CLOSE_OPCODE = 0x8


def _close_codes(proxy: TlsTerminatingProxy) -> list[int]:
    """Close codes the API sent, connection by connection, in order."""
    return [
        int.from_bytes(message.payload[:2], "big")
        for message in proxy.record.messages()
        if _is_server_close(message)
    ]


def _is_server_close(message: TappedMessage) -> bool:
    return (
        message.opcode == CLOSE_OPCODE
        and message.direction is Direction.TO_CLIENT
        and len(message.payload) >= 2
    )


def _ended(agent: InProcessAgent) -> int | None:
    return agent.ended.final_close_code if agent.ended is not None else None


def test_a_revoked_agent_is_cut_off_within_a_second_and_stays_out(
    agents: AgentFactory, api: AgentsApi, tenant: Callable[[], Tenant], proxy: TlsTerminatingProxy
) -> None:
    owner = tenant()
    agent = agents.start_with(owner, "to-revoke", GatedExecutors())
    agent_id = agent.agent_id
    assert api.agents(owner.token)[agent_id]["online"] is True

    revoked = api.revoke_response(owner.token, agent_id)
    answered = time.monotonic()
    assert revoked.status_code == 200, revoked.text
    wait_until(
        lambda: CloseCode.REVOKED in _close_codes(proxy), CUT_OFF_BOUND_S, "the API's 4403 close frame"
    )
    assert time.monotonic() - answered <= CUT_OFF_BOUND_S
    assert wait_until(lambda: _ended(agent), 10, "the agent's end") == CloseCode.REVOKED

    listed = api.agents(owner.token)[agent_id]
    assert listed["online"] is False
    assert listed["revoked_at"] is not None

    # The same agent (its identity and credential are still in its state dir and vault) is refused.
    closes_before = len(_close_codes(proxy))
    again = agents.start(agent.settings, agent.executors_factory, wait=False)
    assert wait_until(lambda: _ended(again), 30, "the second start's end") in {
        CloseCode.REVOKED,
        CloseCode.BAD_CREDENTIAL,
    }
    new_closes = _close_codes(proxy)[closes_before:]
    assert new_closes
    assert set(new_closes) <= {CloseCode.REVOKED, CloseCode.BAD_CREDENTIAL}
    assert api.agents(owner.token)[agent_id]["online"] is False
