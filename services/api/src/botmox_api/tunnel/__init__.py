"""The agent tunnel, the API's side (``docs/agent-protocol.md``): each worker accepts agents'
WebSockets (``endpoint``), drives each with the protocol's session and the agents SQL (``link``),
keeps the ones it holds (``hub``), hears of new commands and revocations through PostgreSQL's
LISTEN/NOTIFY (``listener``), expires commands past their deadline (``sweep``), all started and
stopped together (``worker``)."""

from botmox_api.tunnel.endpoint import UVICORN_WEBSOCKETS, router
from botmox_api.tunnel.worker import WorkerTunnel

__all__ = ["UVICORN_WEBSOCKETS", "WorkerTunnel", "router"]
