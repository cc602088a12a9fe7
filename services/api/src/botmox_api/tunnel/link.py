"""One agent's tunnel on this worker: the WebSocket driven by ``botmox_protocol.ServerSession``
(the rules of the session, pure state) and the agent's calls of the agents SQL (``AgentLinkStore``).

Reading is sequential: one frame is parsed, judged by the session, stored, answered, then the next is
read, so an agent's frames are stored in the order it sent them. Commands are written by whichever
task delivers them (this connection after its hello or a result, the hub on a notification); one
lock orders delivery, another the writes to the socket.

What is stored, and when (``docs/contracts/agents-sql.md``): ``hello`` -> ``api_agent_connect`` (the
credential is checked here: refused -> close 4401 and no ``welcome``); ``heartbeat`` ->
``api_agent_heartbeat`` (revoked -> 4403, another connection took over -> 4409); ack, progress and
result -> their functions, only once the session accepted the frame (a frame the session refuses, or
a duplicate it ignores, reaches no table). A command the database will not move any more (cancelled,
expired, past its deadline) gets an ``error`` frame ``OUT_OF_ORDER``. Frames' bodies are never logged
(a command's params name secrets; a result may hold anything).
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Callable
from typing import Final

from starlette.websockets import WebSocket
from structlog.typing import FilteringBoundLogger

from botmox_api.agent_link import SUPERSEDED_MESSAGE, LinkCommand, LinkedAgent
from botmox_api.agents import AgentRefused
from botmox_api.metrics import ApiMetrics
from botmox_api.model import JsonObject, StoreError
from botmox_api.stores.protocols import AgentLinkStore
from botmox_protocol import (
    COMMAND_KINDS,
    CloseCode,
    CommandAckFrame,
    CommandProgressFrame,
    CommandResultFrame,
    ErrorFrame,
    Frame,
    HeartbeatFrame,
    HelloFrame,
    OutOfOrder,
    ProtocolError,
    ServerPhase,
    ServerSession,
    SessionTerms,
    encode_frame,
    parse_frame,
)

# The refusal SQLSTATEs an agent call answers when a command no longer takes the frame.
_COMMAND_CLOSED: Final = frozenset({"BM404", "BM409"})


class LinkClosed(Exception):
    """The tunnel closed (or is closing) while a task worked on it."""


class AgentLink:
    def __init__(
        self,
        websocket: WebSocket,
        *,
        agent_text: str,
        agent_id: uuid.UUID,
        credential_hash: bytes,
        store: AgentLinkStore,
        terms: SessionTerms,
        metrics: ApiMetrics,
        logger: FilteringBoundLogger,
        on_open: Callable[[AgentLink], None],
    ) -> None:
        """``agent_text``: the agent id exactly as its header gave it (its hello must name the same);
        ``on_open``: called once the database accepted the hello, before the welcome is sent."""
        self._ws = websocket
        self.agent_id = agent_id
        self.connection_id = uuid.uuid4()
        self._credential = credential_hash
        self._store = store
        self._metrics = metrics
        self._on_open = on_open
        self.session = ServerSession(agent_id=agent_text, terms=terms)
        self.linked: LinkedAgent | None = None
        self.close_code: int | None = None
        # Set once the welcome is written: no command frame may precede it.
        self._welcomed = False
        self._log = logger.bind(agent_id=str(agent_id))
        self._send_lock = asyncio.Lock()
        self._delivery_lock = asyncio.Lock()
        # Commands left queued because max_in_flight_commands was reached: look again after a result.
        self._backlog = False
        # Commands re-sent on this connection that the agent acknowledged on an earlier one: its ack
        # here answers the re-send (agent-protocol rule 2) and is not stored again (a second ack is BM409).
        self._acknowledged_before: set[str] = set()
        # Set once the connection is over and the agent's presence cleared (``WorkerTunnel.serve``).
        self.ended = asyncio.Event()

    @property
    def key(self) -> str:
        """The agent's id as the database and its notifications write it."""
        return str(self.agent_id)

    @property
    def closing(self) -> bool:
        return self.close_code is not None

    @property
    def is_open(self) -> bool:
        return self._welcomed and self.close_code is None

    # --- Reading.

    async def run(self) -> None:
        """Read and answer frames until the connection ends (the agent left, a close by either side)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.session.terms.heartbeat_timeout_s
        while self.close_code is None:
            try:
                message = await asyncio.wait_for(self._ws.receive(), max(0.0, deadline - loop.time()))
            except TimeoutError:
                self._log.info("agent_heartbeat_timeout")
                await self.close(CloseCode.HEARTBEAT_TIMEOUT, "no heartbeat within heartbeat_timeout_s")
                return
            if message["type"] == "websocket.disconnect":
                if self.close_code is None:
                    self.close_code = int(message.get("code") or CloseCode.NORMAL)
                return
            if self.closing:
                return  # closed by another task while this message was on its way
            text = message.get("text")
            data: str | bytes = text if text is not None else message.get("bytes") or b""
            if await self._receive(data):
                deadline = loop.time() + self.session.terms.heartbeat_timeout_s

    async def _receive(self, data: str | bytes) -> bool:
        """Handle one message; True when it proves the session alive (a hello or heartbeat accepted)."""
        try:
            frame = parse_frame(data)
        except ProtocolError as error:
            await self._refuse_frame(error)
            return False
        reaction = self.session.receive(frame)
        if reaction.peer_error is not None:
            self._log.info("agent_reported_error", code=reaction.peer_error.code, ref=reaction.peer_error.ref)
        if reaction.close is not None:
            for refusal in reaction.send:
                self._log_refusal(refusal)
                await self._send(refusal)
            await self.close(reaction.close, "protocol violation")
            return False
        accepted = reaction.accepted
        if accepted is None:
            for refusal in reaction.send:
                self._log_refusal(refusal)
                await self._send(refusal)
            return False
        if isinstance(accepted, HelloFrame):
            await self._open(accepted, reaction.send)
            return True
        if isinstance(accepted, HeartbeatFrame):
            await self._heartbeat()
            return True
        if isinstance(accepted, CommandAckFrame | CommandProgressFrame | CommandResultFrame):
            await self._store_command_frame(accepted)
        return False

    async def _refuse_frame(self, error: ProtocolError) -> None:
        frame = self.session.reject(error)
        self._log_refusal(frame)
        await self._send(frame)

    def _log_refusal(self, frame: Frame) -> None:
        if isinstance(frame, ErrorFrame):
            self._log.info("agent_frame_refused", code=frame.code, ref=frame.ref)

    # --- Storing what the session accepted.

    async def _open(self, hello: HelloFrame, welcome: tuple[Frame, ...]) -> None:
        # The kinds both sides know, in the agent's order (a newer agent's unknown kinds are ignored).
        known = self.session.capabilities
        try:
            self.linked = await self._store.connect(
                self.agent_id,
                self._credential,
                connection_id=self.connection_id,
                version=hello.agent_version,
                capabilities=tuple(kind for kind in hello.capabilities if kind in known),
            )
        except AgentRefused as refusal:
            self._log.info("agent_credential_refused", sqlstate=refusal.sqlstate)
            await self.close(CloseCode.BAD_CREDENTIAL, "credential refused")
            return
        except StoreError as error:
            self._log.warning("agent_connect_failed", reason=str(error))
            await self.close(CloseCode.INTERNAL_ERROR, "the server could not record the connection")
            return
        self._on_open(self)
        self._log.info(
            "agent_connected",
            tenant_id=self.linked.tenant_id,
            agent_version=hello.agent_version,
            capabilities=len(known),
        )
        for frame in welcome:
            await self._send(frame)
        self._welcomed = True
        await self.deliver_pending()

    async def _heartbeat(self) -> None:
        try:
            await self._store.heartbeat(self.agent_id, self._credential, connection_id=self.connection_id)
        except AgentRefused as refusal:
            await self._refused(refusal)
        except StoreError as error:
            # The database is away; the tunnel stays (the agent shows offline until a beat lands).
            self._log.warning("agent_heartbeat_not_stored", reason=str(error))

    async def _store_command_frame(
        self, frame: CommandAckFrame | CommandProgressFrame | CommandResultFrame
    ) -> None:
        command_id = uuid.UUID(frame.command_id)  # sent by us, so a UUID
        try:
            if isinstance(frame, CommandAckFrame):
                if frame.command_id in self._acknowledged_before:
                    self._log.info("agent_command_acked_again", command_id=frame.command_id)
                    return
                await self._store.command_acked(self.agent_id, self._credential, command_id)
            elif isinstance(frame, CommandProgressFrame):
                progress: JsonObject = {"percent": frame.percent, "message": frame.message}
                await self._store.command_progress(self.agent_id, self._credential, command_id, progress)
            else:
                await self._store_result(frame, command_id)
        except AgentRefused as refusal:
            if refusal.sqlstate in _COMMAND_CLOSED:
                await self._refuse_frame(
                    OutOfOrder(f"{frame.type}: the command is closed (cancelled or expired)", ref=frame.id)
                )
            else:
                await self._refused(refusal)
        except StoreError as error:
            # Not stored: close, so the agent reconnects and the command's state is read afresh.
            self._log.warning("agent_frame_not_stored", frame_type=frame.type, reason=str(error))
            await self.close(CloseCode.INTERNAL_ERROR, "the server could not store the frame")

    async def _store_result(self, frame: CommandResultFrame, command_id: uuid.UUID) -> None:
        error = frame.error
        stored = await self._store.command_result(
            self.agent_id,
            self._credential,
            command_id,
            ok=frame.ok,
            data=frame.data,
            error_code=None if error is None else error.code,
            error_message=None if error is None else error.message,
        )
        self._metrics.agent_commands.labels(stored.kind, stored.status).inc()
        if stored.latency_s is not None:
            self._metrics.agent_command_latency.labels(stored.kind).observe(stored.latency_s)
        self._log.info(
            "agent_command_finished", command_id=stored.command_id, kind=stored.kind, status=stored.status
        )
        if self._backlog:
            await self.deliver_pending()

    async def _refused(self, refusal: AgentRefused) -> None:
        """An agent call refused as a whole (BM403): the credential was revoked, or another
        connection of the same agent took over."""
        if refusal.sqlstate == "BM403" and refusal.message == SUPERSEDED_MESSAGE:
            await self.close(CloseCode.REPLACED, "replaced by a newer connection")
        elif refusal.sqlstate == "BM403":
            await self.close(CloseCode.REVOKED, "agent revoked")
        else:
            self._log.warning("agent_call_refused", sqlstate=refusal.sqlstate)
            await self.close(CloseCode.INTERNAL_ERROR, "the server refused the call")

    # --- Delivering commands.

    async def deliver_pending(self) -> None:
        """Send every command of this agent that has no result and was not sent on this connection
        (``api_agent_commands_pending``): after the hello, on a notification, after a lost listen."""
        if not self.is_open:
            return
        async with self._delivery_lock:
            try:
                pending = await self._store.pending_commands(self.agent_id, self._credential)
            except AgentRefused as refusal:
                await self._refused(refusal)
                return
            except StoreError as error:
                self._log.warning("agent_pending_not_read", reason=str(error))
                return
            self._backlog = False
            sent_here = self.session.commands
            for command in pending:
                if command.command_id in sent_here:
                    continue
                if not self.session.has_capacity:
                    self._backlog = True
                    return
                if not await self._deliver(command):
                    return

    async def _deliver(self, command: LinkCommand) -> bool:
        """Mark, then send one command; False when the connection can take no more."""
        try:
            COMMAND_KINDS.validate(command.kind, command.params)
            if command.kind not in self.session.capabilities:
                raise OutOfOrder("the agent did not declare this kind")
        except ProtocolError as error:
            # Queued before the agent's capabilities changed: it stays queued until its deadline.
            self._log.warning("agent_command_undeliverable", command_id=command.command_id, code=error.code)
            return True
        try:
            sent = await self._store.command_sent(
                self.agent_id, self._credential, uuid.UUID(command.command_id)
            )
        except AgentRefused as refusal:
            if refusal.sqlstate in _COMMAND_CLOSED:
                return True  # cancelled or expired since it was read
            await self._refused(refusal)
            return False
        except StoreError as error:
            self._log.warning("agent_command_not_marked", command_id=command.command_id, reason=str(error))
            return False
        if not self.is_open or self.session.phase is not ServerPhase.OPEN:
            return False  # marked sent: the next connection re-sends it
        frame = self.session.send_command(
            command_id=sent.command_id, kind=sent.kind, params=sent.params, deadline=sent.deadline
        )
        if sent.acknowledged:
            self._acknowledged_before.add(sent.command_id)
        await self._send(frame)
        self._log.info(
            "agent_command_sent", command_id=sent.command_id, kind=sent.kind, redelivered=sent.acknowledged
        )
        return True

    # --- Writing and closing.

    async def _send(self, frame: Frame) -> None:
        text = encode_frame(frame)
        async with self._send_lock:
            if self.close_code is not None:
                return
            try:
                await self._ws.send_text(text)
            except Exception:
                # The peer went away under us; the reader sees the disconnect and ends the link.
                self.close_code = self.close_code or CloseCode.GOING_AWAY

    async def close(self, code: int, reason: str = "") -> None:
        """Close once with ``code`` (later calls do nothing); safe from any task."""
        async with self._send_lock:
            if self.close_code is not None:
                return
            self.close_code = code
            with contextlib.suppress(Exception):
                await self._ws.close(code, reason)
        self._log.info("agent_tunnel_closing", code=code)
