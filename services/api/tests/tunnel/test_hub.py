"""What the database's notifications do to the tunnels a worker holds: a revocation cuts the agent
off at once, a cancellation sends nothing (the agent's late frames are refused), and a tenant reaches
only its own agents."""

from __future__ import annotations

from tunnel_support import (
    CAPABILITIES,
    Agent,
    admin,
    agent_connection,
    command_rows,
    connected,
    enqueue,
    member,
    new_id,
    read_command,
    register_agent,
    served,
)

from botmox_protocol import CloseCode, CommandAckFrame, CommandResultFrame, ErrorCode, HelloFrame
from harness.postgres.migrated import PgDatabase


async def test_revoking_closes_the_open_tunnel_with_4403_within_a_second(pg_database: PgDatabase) -> None:
    async with served(pg_database) as api:
        agent = await register_agent(api, "tenant-a")
        async with connected(api, agent) as connection:
            command_id = (await enqueue(api, agent)).json()["data"]["id"]
            await connection.command()
            revoked = await api.http.post(
                f"/api/v1/agents/{agent.agent_id}/revoke", headers=admin("tenant-a")
            )
            assert revoked.status_code == 200
            code, _ = await connection.closed_with(within_s=1.0)
            assert code == CloseCode.REVOKED
        rows = await command_rows(pg_database)
        assert [(str(row["id"]), row["status"], row["error_code"]) for row in rows] == [
            (command_id, "cancelled", "AGENT_REVOKED")
        ]
        # Refused from then on: the credential no longer opens a session, and nothing is stored.
        async with agent_connection(api, agent.headers(), agent.agent_id) as connection:
            await connection.send(
                HelloFrame(
                    id=new_id(), agent_id=agent.agent_id, agent_version="1.0.0", capabilities=CAPABILITIES
                )
            )
            code, frames = await connection.closed_with()
            assert code == CloseCode.BAD_CREDENTIAL
            assert frames == []
        assert await command_rows(pg_database) == rows
        listed = await api.http.get("/api/v1/agents", headers=admin("tenant-a"))
        assert listed.json()["data"][0]["online"] is False


async def test_a_cancelled_command_refuses_the_agents_late_frames(pg_database: PgDatabase) -> None:
    async with served(pg_database) as api:
        agent = await register_agent(api, "tenant-a")
        async with connected(api, agent) as connection:
            command_id = (await enqueue(api, agent)).json()["data"]["id"]
            await connection.command()
            cancelled = await api.http.post(
                f"/api/v1/agents/{agent.agent_id}/commands/{command_id}/cancel", headers=member("tenant-a")
            )
            assert cancelled.status_code == 200, cancelled.text
            assert cancelled.json()["data"]["status"] == "cancelled"
            assert cancelled.json()["data"]["error"] == {
                "code": "CANCELLED",
                "message": "cancelled by user-of-tenant-a",
            }
            rows = await command_rows(pg_database)
            ack = CommandAckFrame(id=new_id(), command_id=command_id)
            await connection.send(ack)
            error = await connection.error()
            assert (error.code, error.ref) == (ErrorCode.OUT_OF_ORDER, ack.id)
            # The session took the ack; the result that follows is refused by the database too.
            result = CommandResultFrame(id=new_id(), command_id=command_id, ok=True, data=None)
            await connection.send(result)
            error = await connection.error()
            assert (error.code, error.ref) == (ErrorCode.OUT_OF_ORDER, result.id)
            assert await command_rows(pg_database) == rows
            again = await api.http.post(
                f"/api/v1/agents/{agent.agent_id}/commands/{command_id}/cancel", headers=member("tenant-a")
            )
            assert again.status_code == 409
            assert again.json()["error"]["code"] == "CONFLICT"
            # The tunnel stays usable.
            next_id = (await enqueue(api, agent)).json()["data"]["id"]
            assert (await connection.command()).command_id == next_id


async def test_a_tenant_cannot_command_read_or_cancel_another_tenants_agent(pg_database: PgDatabase) -> None:
    async with served(pg_database) as api:
        agent = await register_agent(api, "tenant-a")
        async with connected(api, agent) as connection:
            command_id = (await enqueue(api, agent)).json()["data"]["id"]
            await connection.command()
            rows = await command_rows(pg_database)
            foreign = await enqueue(api, agent, tenant="tenant-b")
            assert foreign.status_code == 404
            read = await api.http.get(
                f"/api/v1/agents/{agent.agent_id}/commands/{command_id}", headers=member("tenant-b")
            )
            assert read.status_code == 404
            cancel = await api.http.post(
                f"/api/v1/agents/{agent.agent_id}/commands/{command_id}/cancel", headers=member("tenant-b")
            )
            assert cancel.status_code == 404
            revoke = await api.http.post(f"/api/v1/agents/{agent.agent_id}/revoke", headers=admin("tenant-b"))
            assert revoke.status_code == 404
            listed = await api.http.get("/api/v1/agents", headers=member("tenant-b"))
            assert listed.json()["data"] == []
            assert await command_rows(pg_database) == rows
            # Nothing reached the agent, which still works for its own tenant.
            await connection.heartbeat()
            with_own = await read_command(api, agent, command_id)
            assert with_own["status"] == "sent"
            assert await _nothing_arrives(connection)


async def _nothing_arrives(connection: Agent) -> bool:
    try:
        await connection.receive(within_s=0.3)
    except TimeoutError:
        return True
    return False


async def test_a_resync_delivers_commands_whose_notification_was_missed(pg_database: PgDatabase) -> None:
    async with served(pg_database) as api:
        agent = await register_agent(api, "tenant-a")
        tunnel = api.app.state.tunnel
        async with connected(api, agent) as connection:
            await tunnel.listener.aclose()  # nobody hears the notification of what comes next
            command_id = (await enqueue(api, agent)).json()["data"]["id"]
            assert await _nothing_arrives(connection)
            tunnel.hub.resync()  # what the listener does each time it listens again
            assert (await connection.command()).command_id == command_id
