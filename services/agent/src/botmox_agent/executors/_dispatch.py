"""``build_executors``: every kind of the protocol's registry paired with the handler that runs it."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Final

import httpx
from pydantic import BaseModel, JsonValue

from botmox_agent.executors import _http
from botmox_agent.executors._contract import CommandFailed, Executors, Progress, SecretResolver
from botmox_agent.executors._handlers import Handler
from botmox_agent.executors._proxmox import ProxmoxExecutor
from botmox_agent.executors._settings import ExecutorSettings
from botmox_agent.executors._syncthing import SyncthingExecutor
from botmox_protocol import COMMAND_KINDS
from botmox_protocol.journal import UNSUPPORTED_KIND
from botmox_protocol.limits import MAX_MESSAGE_CHARS

logger: Final = logging.getLogger("botmox_agent.executors")


def build_executors(
    settings: ExecutorSettings,
    secrets: SecretResolver,
    *,
    transport: httpx.AsyncBaseTransport | None = None,
) -> Executors:
    """The agent's executors: SyncThing's kinds when ``settings.syncthing_url`` is set, Proxmox VE's
    always. ``transport`` replaces the network for every HTTP client (tests replay recordings)."""
    proxmox = ProxmoxExecutor(settings, secrets, transport)
    syncthing = None
    if settings.syncthing_url is not None:
        client = _http.async_client(
            settings.syncthing_url,
            timeout=settings.request_timeout,
            verify=_http.tls_trust(True, settings.ca_file),
            transport=transport,
        )
        syncthing = SyncthingExecutor(settings.syncthing_url, settings.syncthing_api_key, secrets, client)
    return _Dispatcher(proxmox, syncthing)


class _Dispatcher:
    """Runs a kind by its handler; a kind of the registry without one is a bug caught at start-up."""

    def __init__(self, proxmox: ProxmoxExecutor, syncthing: SyncthingExecutor | None) -> None:
        self._proxmox = proxmox
        self._syncthing = syncthing
        handlers: dict[str, Handler] = dict(proxmox.handlers())
        if syncthing is not None:
            handlers.update(syncthing.handlers())
        unknown = set(handlers) - COMMAND_KINDS.names()
        if unknown:
            raise RuntimeError(f"handlers for kinds the protocol does not declare: {sorted(unknown)}")
        self._handlers: Mapping[str, Handler] = handlers

    def kinds(self) -> frozenset[str]:
        return frozenset(self._handlers)

    async def run(self, kind: str, params: BaseModel, progress: Progress) -> JsonValue:
        handler = self._handlers.get(kind)
        if handler is None:
            # The protocol's session refuses such a command before it gets here; this is the same answer.
            raise CommandFailed(UNSUPPORTED_KIND, f"this agent does not run {kind}")
        expected = COMMAND_KINDS.get(kind).params
        if not isinstance(params, expected):
            raise TypeError(f"{kind} takes {expected.__name__} params, got {type(params).__name__}")
        logger.debug("running a command", extra={"kind": kind})
        try:
            return await handler(params, progress)
        except CommandFailed as failure:
            if len(failure.message) <= MAX_MESSAGE_CHARS:
                raise
            # A result frame's message has a size limit; a peer's long error text must not void it.
            raise CommandFailed(failure.code, _http.short(failure.message, MAX_MESSAGE_CHARS)) from None

    async def aclose(self) -> None:
        await self._proxmox.aclose()
        if self._syncthing is not None:
            await self._syncthing.aclose()
