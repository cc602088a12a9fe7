"""The link goes between commands: the API restarted, or the connection dropped by the proxy. The
agent reconnects on its own, commands flow again, and nothing already finished is sent or run twice
(the mid-command cases are ``test_reconnect_mid_command.py``)."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from agent_suite import AgentFactory, Tenant, command_rows, finished_command, restart_api, wait_until
from real_agent import GatedExecutors

from harness.fixtures.agents_api import AgentsApi
from harness.fixtures.cli_stack import StackUnderTest
from harness.fixtures.tls_proxy import TlsTerminatingProxy

pytestmark = pytest.mark.integration

RECONNECT_BOUND_S = 60.0


@pytest.mark.parametrize("break_link", ["api_restart", "proxy_drop"])
def test_the_agent_reconnects_and_commands_flow_again(
    agents: AgentFactory,
    api: AgentsApi,
    tenant: Callable[[], Tenant],
    agent_stack: StackUnderTest,
    proxy: TlsTerminatingProxy,
    break_link: str,
) -> None:
    owner = tenant()
    executors = GatedExecutors()
    agent = agents.start_with(owner, "reconnecting", executors)
    first = api.enqueue(owner.token, agent.agent_id, "syncthing.status")["id"]
    assert finished_command(api, owner.token, agent.agent_id, first)["status"] == "succeeded"

    opened = proxy.connections_opened
    if break_link == "api_restart":
        restart_api(agent_stack)
    else:
        assert proxy.drop_connections() >= 1
    wait_until(lambda: proxy.connections_opened > opened, RECONNECT_BOUND_S, "the agent reconnecting")
    agent.wait_connected(RECONNECT_BOUND_S)
    wait_until(
        lambda: api.agents(owner.token)[agent.agent_id]["online"], RECONNECT_BOUND_S, "the agent online again"
    )

    second = api.enqueue(owner.token, agent.agent_id, "syncthing.folders.list")["id"]
    assert finished_command(api, owner.token, agent.agent_id, second)["status"] == "succeeded"
    assert executors.runs == {"syncthing.status": 1, "syncthing.folders.list": 1}
    rows = command_rows(agent_stack, agent.agent_id)
    assert [(row["id"], row["status"], row["deliveries"]) for row in rows] == [
        (first, "succeeded", 1),
        (second, "succeeded", 1),
    ]
