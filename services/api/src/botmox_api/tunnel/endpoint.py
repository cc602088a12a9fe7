"""``GET /api/v1/agents/ws``: the agents' WebSocket (``docs/agent-protocol.md``).

The request gate lets WebSocket requests through untouched (it gates HTTP only): the tunnel
authenticates the agent itself, with the headers of the upgrade request, ``Authorization: Bearer
<credential>`` and ``X-Botmox-Agent-Id: <agent uuid>``. The connection is accepted first so that every
refusal is a close code the agent can read (a refused upgrade is only an HTTP status): missing or
malformed headers close with 4401 before any frame; the credential itself is checked when the hello
arrives (``api_agent_connect``, in one statement with recording the connection), refused -> 4401 with
no ``welcome``. The database gives one refusal for an unknown agent, a wrong credential and a revoked
agent (nothing is revealed), so a revoked agent's new connection closes with 4401 too; 4403 is for a
tunnel that was open when its agent was revoked. Both are final for the agent.

Without ``SUPABASE_DB_URL`` there is no agent store: every connection is closed with 1011.

``UVICORN_WEBSOCKETS``: how uvicorn must serve the socket (``python -m botmox_api`` passes them):
websockets' Sans-I/O implementation, messages above ``TRANSPORT_MAX_BYTES`` closed with 1009 before
they are read, WebSocket pings every 20 s (a peer that does not answer within 20 s is dropped).
"""

from __future__ import annotations

from typing import Any, Final

from fastapi import APIRouter
from starlette.websockets import WebSocket

from botmox_api.agent_link import agent_uuid
from botmox_api.agents import secret_digest
from botmox_api.auth import bearer_token
from botmox_protocol import TRANSPORT_MAX_BYTES, CloseCode

TUNNEL_ROUTE: Final = "/agents/ws"
AGENT_ID_HEADER: Final = "x-botmox-agent-id"
PING_INTERVAL_S: Final = 20.0
PING_TIMEOUT_S: Final = 20.0
UVICORN_WEBSOCKETS: Final[dict[str, Any]] = {
    "ws": "websockets-sansio",
    "ws_max_size": TRANSPORT_MAX_BYTES,
    "ws_ping_interval": PING_INTERVAL_S,
    "ws_ping_timeout": PING_TIMEOUT_S,
}

router = APIRouter()


@router.websocket(TUNNEL_ROUTE)
async def agent_tunnel(websocket: WebSocket) -> None:
    await websocket.accept()
    tunnel = websocket.app.state.tunnel
    if tunnel is None:
        await websocket.close(CloseCode.INTERNAL_ERROR, "agents need SUPABASE_DB_URL")
        return
    credential = bearer_token(websocket.headers.get("authorization"))
    agent_text = websocket.headers.get(AGENT_ID_HEADER)
    agent_id = agent_uuid(agent_text) if agent_text else None
    if not credential or agent_text is None or agent_id is None:
        await websocket.close(CloseCode.BAD_CREDENTIAL, "credential or agent id missing or malformed")
        return
    await tunnel.serve(
        websocket, agent_text=agent_text, agent_id=agent_id, credential_hash=secret_digest(credential)
    )
