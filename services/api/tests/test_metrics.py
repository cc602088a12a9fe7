"""``GET /metrics``: for the internal infra token only; the tunnel's figures as the seams name them
(agents connected, connections opened, outcomes by kind, enqueue-to-result latency)."""

from __future__ import annotations

import asyncio

import pytest
from api_support import API_TOKEN, bearer, user
from tunnel_support import (
    WAIT_S,
    connected,
    enqueue,
    metrics_text,
    new_id,
    register_agent,
    served,
    until_status,
)

from botmox_protocol import CommandAckFrame, CommandResultFrame
from harness.postgres.migrated import PgDatabase


@pytest.mark.parametrize(
    "headers", [{}, bearer(API_TOKEN), user(), bearer("not-a-token")], ids=["none", "api", "user", "bad"]
)
async def test_metrics_need_the_internal_infra_token(headers: dict[str, str]) -> None:
    async with served(None) as api:
        response = await api.http.get("/metrics", headers=headers)
        assert response.status_code == 401
        assert response.json()["error"]["code"] == "UNAUTHORIZED"


async def test_the_tunnels_figures(pg_database: PgDatabase) -> None:
    async with served(pg_database) as api:
        agent = await register_agent(api, "tenant-a")
        async with connected(api, agent) as connection:
            command_id = (await enqueue(api, agent)).json()["data"]["id"]
            await connection.command()
            await connection.send(CommandAckFrame(id=new_id(), command_id=command_id))
            await connection.send(CommandResultFrame(id=new_id(), command_id=command_id, ok=True, data=None))
            await until_status(api, agent, command_id, "succeeded")
            text = await metrics_text(api)
            assert "botmox_api_agents_connected 1.0" in text
            assert "botmox_api_agent_connections_total 1.0" in text
            assert 'botmox_api_agent_commands_total{kind="syncthing.status",outcome="succeeded"} 1.0' in text
            assert 'botmox_api_agent_command_latency_seconds_count{kind="syncthing.status"} 1.0' in text
            # A tunnel is not a request: the agents' figures above count it, the request series do not.
            assert 'route="/api/v1/agents/ws"' not in text
            enqueued = 'method="POST",route="/api/v1/agents/{agent_id}/commands",status="201"} 1.0'
            assert enqueued in text
        # Gone: the gauge drops once the server has seen the close.
        async with asyncio.timeout(WAIT_S):
            while True:
                if "botmox_api_agents_connected 0.0" in await metrics_text(api):
                    break
                await asyncio.sleep(0.05)
