"""The agent tunnel of one API worker: its hub of connections, its listening session and its sweep,
started with the app's lifespan and stopped with it (tunnels still open are closed with 1001 and
their agents marked disconnected).
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid

from starlette.websockets import WebSocket
from structlog.typing import FilteringBoundLogger

from botmox_api.metrics import ApiMetrics
from botmox_api.model import StoreError
from botmox_api.stores.protocols import AgentLinkStore
from botmox_api.tunnel.hub import TunnelHub
from botmox_api.tunnel.link import AgentLink
from botmox_api.tunnel.listener import CommandListener
from botmox_api.tunnel.sweep import ExpirySweep
from botmox_protocol import CloseCode, SessionTerms


class WorkerTunnel:
    def __init__(
        self,
        store: AgentLinkStore,
        *,
        terms: SessionTerms,
        sweep_interval_s: float,
        metrics: ApiMetrics,
        logger: FilteringBoundLogger,
    ) -> None:
        self._store = store
        self._terms = terms
        self._metrics = metrics
        self._log = logger
        self.hub = TunnelHub(metrics=metrics, logger=logger)
        self.listener = CommandListener(
            store, on_notice=self.hub.notice, on_listening=self.hub.resync, logger=logger
        )
        self.sweep = ExpirySweep(store, interval_s=sweep_interval_s, metrics=metrics, logger=logger)

    def start(self) -> None:
        self.listener.start()
        self.sweep.start()

    async def serve(
        self, websocket: WebSocket, *, agent_text: str, agent_id: uuid.UUID, credential_hash: bytes
    ) -> None:
        """Drive one accepted connection until it ends, then record that it did."""
        link = AgentLink(
            websocket,
            agent_text=agent_text,
            agent_id=agent_id,
            credential_hash=credential_hash,
            store=self._store,
            terms=self._terms,
            metrics=self._metrics,
            logger=self._log,
            on_open=self.hub.attach,
        )
        try:
            await link.run()
        except Exception:
            # A bug, not the agent's doing: the agent reconnects after 1011.
            self._log.exception("agent_tunnel_failed", agent_id=link.key)
            await link.close(CloseCode.INTERNAL_ERROR, "server error")
        finally:
            try:
                await self._ended(link)
            finally:
                link.ended.set()

    async def _ended(self, link: AgentLink) -> None:
        self.hub.detach(link)
        if link.linked is None:
            return
        self._log.info("agent_disconnected", agent_id=link.key, code=link.close_code)
        # Shielded: a worker shutting down cancels its connections' tasks, and the agent's presence
        # must still be cleared (only if this connection is still its current one).
        with contextlib.suppress(StoreError, asyncio.CancelledError):
            await asyncio.shield(self._store.disconnected(link.agent_id, connection_id=link.connection_id))

    async def aclose(self) -> None:
        await self.listener.aclose()
        await self.sweep.aclose()
        await self.hub.aclose()
