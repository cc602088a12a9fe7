"""The expiry sweep: a command past its deadline is marked expired by the worker's periodic sweep,
counted in the metrics, and the agent's late frames about it are refused."""

from __future__ import annotations

from tunnel_support import connected, enqueue, metrics_text, new_id, register_agent, served, until_status

from botmox_protocol import CommandAckFrame, ErrorCode
from harness.postgres.migrated import PgDatabase


async def test_a_command_past_its_deadline_is_expired_by_the_sweep(pg_database: PgDatabase) -> None:
    async with served(pg_database, agent_sweep_interval_s=0.2) as api:
        agent = await register_agent(api, "tenant-a")
        async with connected(api, agent) as connection:
            command_id = (await enqueue(api, agent, deadline_s=1)).json()["data"]["id"]
            await connection.command()
            expired = await until_status(api, agent, command_id, "expired")
            assert expired["error"] == {
                "code": "DEADLINE_EXCEEDED",
                "message": "the command's deadline passed",
            }
            ack = CommandAckFrame(id=new_id(), command_id=command_id)
            await connection.send(ack)
            error = await connection.error()
            assert (error.code, error.ref) == (ErrorCode.OUT_OF_ORDER, ack.id)
        text = await metrics_text(api)
        assert 'botmox_api_agent_commands_total{kind="syncthing.status",outcome="expired"} 1.0' in text
