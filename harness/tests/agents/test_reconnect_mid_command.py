"""A command in the middle when the link goes: the API restarted, or the connection dropped by the
proxy. The agent reconnects, the command completes exactly once (its executor ran once) and its result
is stored once (issue 16, Tests: "The API restarted mid-command, and the connection dropped by a
proxy in the middle").

The executor holds the command until the test releases it: either while the agent is cut off (the
result waits in the journal for the server's re-send and is answered from it) or after the re-send
reached the agent (it acks the re-send and the result follows on the new connection).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import pytest
from agent_suite import AgentFactory, Tenant, command_rows, finished_command, restart_api, wait_until
from real_agent import GatedExecutors, InProcessAgent

from harness import processes
from harness.fixtures.agents_api import AgentsApi
from harness.fixtures.cli_stack import StackUnderTest
from harness.fixtures.tls_proxy import TlsTerminatingProxy

pytestmark = pytest.mark.integration

# The agent's return (an API restart takes seconds on a loaded machine), then what follows it: the
# server re-sends right after the hello, and the result follows the re-send or the release.
RECONNECT_BOUND_S = 60.0
AFTER_RECONNECT_S = 10.0


def _assert_completed_once(
    stack: StackUnderTest,
    api: AgentsApi,
    owner: Tenant,
    agent: InProcessAgent,
    executors: GatedExecutors,
    command_id: str,
) -> dict[str, Any]:
    try:
        command = finished_command(api, owner.token, agent.agent_id, command_id, timeout_s=AFTER_RECONNECT_S)
    except AssertionError as error:
        rows = command_rows(stack, agent.agent_id)
        raise AssertionError(f"{error}\nrows: {rows}\nagent log:\n{agent.log_text()[-6000:]}") from None
    assert command["status"] == "succeeded", command
    assert command["result"] == {"ran": "proxmox.vm.start"}
    assert executors.runs == {"proxmox.vm.start": 1}
    [row] = command_rows(stack, agent.agent_id)
    assert row["id"] == command_id
    assert row["status"] == "succeeded"
    assert row["result_data"] == {"ran": "proxmox.vm.start"}
    return row


def _start_command(
    agents: AgentFactory, api: AgentsApi, owner: Tenant
) -> tuple[InProcessAgent, GatedExecutors, str]:
    executors = GatedExecutors(hold=True)
    agent = agents.start_with(owner, "mid-command", executors)
    params = {"credential": "secret://proxmox/pve1", "node": "pve1", "vmid": 101}
    command_id = str(api.enqueue(owner.token, agent.agent_id, "proxmox.vm.start", params)["id"])
    assert executors.started.wait(30), agent.log_text()
    # The API stored the ack before the link goes: the case where only a re-send can save the result
    # (an ack lost with the connection leaves the command "sent", which is re-sent today).
    wait_until(
        lambda: [row["status"] for row in command_rows(agents.stack, agent.agent_id)] == ["acked"],
        RECONNECT_BOUND_S,
        "the ack stored",
    )
    return agent, executors, command_id


def _redelivered(stack: StackUnderTest, agent: InProcessAgent) -> bool:
    return any(row["deliveries"] >= 2 for row in command_rows(stack, agent.agent_id))


def _back(agent: InProcessAgent, proxy: TlsTerminatingProxy, opened: int) -> None:
    """Until the agent opened a new connection (so it noticed the old one's end) and was welcomed."""
    wait_until(lambda: proxy.connections_opened > opened, RECONNECT_BOUND_S, "the agent reconnecting")
    agent.wait_connected(RECONNECT_BOUND_S)


def _resent_then_released(stack: StackUnderTest, agent: InProcessAgent, executors: GatedExecutors) -> None:
    wait_until(lambda: _redelivered(stack, agent), AFTER_RECONNECT_S, "the command re-sent")
    executors.release()


@pytest.mark.parametrize("release", ["while_down", "after_resend"])
def test_the_api_restarted_mid_command(
    agents: AgentFactory,
    api: AgentsApi,
    tenant: Callable[[], Tenant],
    agent_stack: StackUnderTest,
    proxy: TlsTerminatingProxy,
    release: str,
) -> None:
    owner = tenant()
    agent, executors, command_id = _start_command(agents, api, owner)
    old_api = agent_stack.current().processes["api"]
    opened = proxy.connections_opened
    restarted: list[processes.ProcessIdentity] = []
    flip = threading.Thread(target=lambda: restarted.append(restart_api(agent_stack)))
    flip.start()
    try:
        if release == "while_down":
            wait_until(lambda: not processes.is_running(old_api), RECONNECT_BOUND_S, "the old API stopped")
            executors.release()
    finally:
        flip.join(timeout=180)
    assert restarted, "the API did not restart"
    _back(agent, proxy, opened)
    if release == "after_resend":
        _resent_then_released(agent_stack, agent, executors)
    row = _assert_completed_once(agent_stack, api, owner, agent, executors, command_id)
    assert row["deliveries"] >= 2


@pytest.mark.parametrize("release", ["while_down", "after_resend"])
def test_the_proxy_drops_the_connection_mid_command(
    agents: AgentFactory,
    api: AgentsApi,
    tenant: Callable[[], Tenant],
    agent_stack: StackUnderTest,
    proxy: TlsTerminatingProxy,
    release: str,
) -> None:
    owner = tenant()
    agent, executors, command_id = _start_command(agents, api, owner)
    opened = proxy.connections_opened
    if release == "while_down":
        # Keep the agent out for a moment, so the result surely finishes while it is disconnected.
        proxy.refuse_connections = True
        assert proxy.drop_connections() >= 1
        executors.release()
        wait_until(lambda: proxy.connections_opened > opened, RECONNECT_BOUND_S, "the agent tried again")
        proxy.refuse_connections = False
        agent.wait_connected(RECONNECT_BOUND_S)
    else:
        assert proxy.drop_connections() >= 1
        _back(agent, proxy, opened)
        _resent_then_released(agent_stack, agent, executors)
    row = _assert_completed_once(agent_stack, api, owner, agent, executors, command_id)
    assert row["deliveries"] >= 2
