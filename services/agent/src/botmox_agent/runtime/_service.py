"""``botmox-agent run`` as a function: pair when asked to, recover the journal, open the tunnel and the
local HTTP server, and run until ``stop`` is set or the server closes for good."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from importlib.metadata import version
from typing import Final

import httpx

from botmox_agent.executors import Executors
from botmox_agent.runtime._credential import load_credential
from botmox_agent.runtime._executors_wiring import ExecutorsFactory
from botmox_agent.runtime._http import LocalHttpServer
from botmox_agent.runtime._journal import SqliteJournal
from botmox_agent.runtime._logging import AgentLog
from botmox_agent.runtime._metrics import AgentMetrics
from botmox_agent.runtime._pairing import PairingError, PairingRequest, pair
from botmox_agent.runtime._settings import AgentSettings, parse_address
from botmox_agent.runtime._state import Identity, StateDir
from botmox_agent.runtime._status import StatusRecorder
from botmox_agent.runtime._tls import client_tls_context
from botmox_agent.runtime._tunnel import Tunnel, TunnelConfig, TunnelEnded
from botmox_agent.runtime._vault_secrets import VaultSecrets
from botmox_agent.vault import SecretValue
from botmox_protocol import COMMAND_KINDS, reconnect_delay, recover_interrupted

AGENT_VERSION: Final = version("botmox-agent")


class NotPaired(Exception):
    """No identity in the state directory and nothing to pair with."""


@dataclass(frozen=True)
class RunOptions:
    """What tests (and only they) tune: the reconnect delay, the shutdown grace, pings, the wait for
    the connection and its welcome, a pairing transport, and a callback once the local HTTP server
    listens (its port)."""

    delay: Callable[[int], float] = reconnect_delay
    shutdown_grace_s: float = 20.0
    ping_interval_s: float = 20.0
    open_timeout_s: float = 10.0
    pairing_transport: httpx.BaseTransport | None = None
    on_http_ready: Callable[[int], None] | None = None


async def run_agent(
    settings: AgentSettings,
    *,
    executors_factory: ExecutorsFactory,
    stop: asyncio.Event,
    log: AgentLog,
    options: RunOptions | None = None,
) -> TunnelEnded:
    options = options or RunOptions()
    state = StateDir(settings.state_dir)
    state.ensure()
    tls = client_tls_context(settings.ca_file)
    secrets = VaultSecrets(settings)
    executors = executors_factory(settings, secrets.get)
    try:
        identity = state.read_identity()
        if identity is None:
            identity = await _pair_from_settings(settings, executors.kinds(), tls, options, log)
        server_url = settings.server_url or identity.server_url
        credential = load_credential(secrets.vault())
        journal = SqliteJournal(state.journal_path)
        try:
            interrupted = recover_interrupted(journal)
            if interrupted:
                log.warning("journal.recovered_interrupted", command_ids=interrupted)
            return await _serve(
                settings, identity, server_url, credential, tls, executors, journal, stop, log, options
            )
        finally:
            journal.close()
    finally:
        await executors.aclose()


async def _pair_from_settings(
    settings: AgentSettings,
    kinds: frozenset[str],
    tls: ssl.SSLContext,
    options: RunOptions,
    log: AgentLog,
) -> Identity:
    if settings.pairing_code is None:
        raise NotPaired(
            f"this agent is not paired (no identity in {settings.state_dir}): run `botmox-agent pair`, "
            "or set BOTMOX_AGENT_PAIRING_CODE and BOTMOX_AGENT_SERVER_URL"
        )
    if settings.server_url is None:
        raise PairingError("BOTMOX_AGENT_PAIRING_CODE is set but BOTMOX_AGENT_SERVER_URL is not")
    request = PairingRequest(
        server_url=settings.server_url,
        code=SecretValue(settings.pairing_code.get_secret_value()),
        name=settings.name,
        version=AGENT_VERSION,
        capabilities=tuple(sorted(kinds & COMMAND_KINDS.names())),
    )
    identity = await asyncio.to_thread(pair, settings, request, tls=tls, transport=options.pairing_transport)
    log.info("agent.paired", agent_id=identity.agent_id, tenant_id=identity.tenant_id, name=identity.name)
    return identity


async def _serve(
    settings: AgentSettings,
    identity: Identity,
    server_url: str,
    credential: SecretValue,
    tls: ssl.SSLContext,
    executors: Executors,
    journal: SqliteJournal,
    stop: asyncio.Event,
    log: AgentLog,
    options: RunOptions,
) -> TunnelEnded:
    metrics = AgentMetrics()
    status = StatusRecorder(
        StateDir(settings.state_dir), server_url=server_url, agent_id=identity.agent_id, log=log
    )
    tunnel = Tunnel(
        TunnelConfig(
            server_url=server_url,
            agent_id=identity.agent_id,
            credential=credential,
            agent_version=AGENT_VERSION,
            tls=tls,
            ping_interval_s=options.ping_interval_s,
            ping_timeout_s=options.ping_interval_s,
            open_timeout_s=options.open_timeout_s,
            shutdown_grace_s=options.shutdown_grace_s,
        ),
        executors=executors,
        journal=journal,
        metrics=metrics,
        status=status,
        log=log,
        delay=options.delay,
    )
    http: LocalHttpServer | None = None
    if settings.http_address is not None:
        host, port = parse_address(settings.http_address)
        http = LocalHttpServer(host, port, metrics=metrics, health=tunnel.health)
        await http.start()
        log.info("agent.http_listening", address=f"{host}:{http.port}")
        if options.on_http_ready is not None:
            options.on_http_ready(http.port)
    log.info("agent.started", agent_id=identity.agent_id, tenant_id=identity.tenant_id, version=AGENT_VERSION)
    try:
        ended = await tunnel.run(stop)
    finally:
        if http is not None:
            await http.aclose()
    if ended.final_close_code is None:
        log.info("agent.stopped")
    else:
        log.error("agent.stopped", close_code=ended.final_close_code, reason=ended.reason)
    return ended
