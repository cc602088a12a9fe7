"""The real agent against the API the harness started, over a real TLS WebSocket on loopback: it pairs
through the TLS proxy (a throwaway CA), comes online in ``GET /api/v1/agents``, and a command makes the
round trip (issue 16, Tests: "A real TLS WebSocket on loopback")."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest
from agent_suite import AgentFactory, Tenant, command_rows, finished_command, wait_until
from real_agent import GatedExecutors

from harness.fixtures.agents_api import AgentsApi
from harness.fixtures.cli_stack import StackUnderTest
from harness.fixtures.tls_proxy import TlsTerminatingProxy
from harness.fixtures.websocket_tap import Direction

pytestmark = pytest.mark.integration


def _types(proxy: TlsTerminatingProxy, direction: Direction) -> list[str]:
    return [json.loads(text)["type"] for text in proxy.record.text_messages(direction)]


def test_the_agent_pairs_connects_and_runs_a_command_over_tls(
    agents: AgentFactory,
    api: AgentsApi,
    tenant: Callable[[], Tenant],
    proxy: TlsTerminatingProxy,
    agent_stack: StackUnderTest,
) -> None:
    owner = tenant()
    executors = GatedExecutors()
    agent = agents.start_with(owner, "tls-agent", executors)

    listed = wait_until(
        lambda: (
            api.agents(owner.token).get(agent.agent_id)
            if api.agents(owner.token).get(agent.agent_id, {}).get("online")
            else None
        ),
        10,
        "the agent online in GET /api/v1/agents",
    )
    assert listed["name"] == "tls-agent"
    assert set(listed["capabilities"]) == executors.kinds()

    queued = api.enqueue(owner.token, agent.agent_id, "syncthing.status")
    command = finished_command(api, owner.token, agent.agent_id, queued["id"])
    assert command["status"] == "succeeded", command
    assert command["result"] == {"ran": "syncthing.status"}
    assert executors.runs == {"syncthing.status": 1}
    [row] = command_rows(agent_stack, agent.agent_id)
    assert row["deliveries"] == 1
    assert row["acked_at"] is not None

    # Everything crossed the TLS proxy: the pairing's HTTP call and the tunnel's frames, both ways.
    assert _types(proxy, Direction.TO_SERVER)[:1] == ["hello"]
    assert {"hello", "command.ack", "command.progress", "command.result"} <= set(
        _types(proxy, Direction.TO_SERVER)
    )
    assert {"welcome", "command"} <= set(_types(proxy, Direction.TO_CLIENT))
    assert b"POST /api/v1/agents/register" in proxy.record.raw_bytes(Direction.TO_SERVER)
