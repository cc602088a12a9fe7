"""The phases of ``make agents-scale`` against a running stack (``ScaleTarget``), each bounded.

1. Pair ``agents`` simulated agents (``POST /agents/pairings`` with the internal infra token, then
   ``/register``), ``pair_concurrency`` at a time.
2. Read the API's RSS, start the fleet (``harness.fixtures.agent_fleet``: ``processes`` processes),
   wait until the database holds a connection for every agent, settle, read the RSS again.
3. For ``command_seconds`` (and until every agent got one), ``enqueuers`` loops send
   ``syncthing.status`` to the agents in turn; wait until every command has a stored outcome.
4. Restart the API (``ScaleTarget.restart_api``) and wait until every agent's ``connected_at`` is
   past the restart; their arrivals, relative to it, are the reconnect histogram.
5. Stop the fleet; its reports give heartbeats and whether any command ran twice.

Every wait has a bound (``Options``); an exceeded bound ends the run with what was measured and a
problem named, never a hang.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import psycopg

from harness.fixtures.agent_fleet import Fleet
from harness.fixtures.agents_api import AsyncAgentsApi, RegisteredAgent
from loadtests.agents_scale.figures import Figures, Reconnects

POLL_S: Final = 0.25
SETTLE_S: Final = 3.0
COMMAND_KIND: Final = "syncthing.status"


@dataclass(frozen=True, slots=True)
class ScaleTarget:
    """A running stack: its API's URL and infra token, the database's admin DSN, the API's PID now,
    and how to restart the API (returns once the new one is healthy)."""

    api_url: str
    infra_token: str
    database_url: str
    api_pid: Callable[[], int]
    restart_api: Callable[[], None]


@dataclass(frozen=True, slots=True)
class Options:
    agents: int = 1000
    processes: int = 4
    command_seconds: float = 20.0
    enqueuers: int = 16
    pair_concurrency: int = 16
    restart: bool = True
    connect_timeout_s: float = 180.0
    finish_timeout_s: float = 120.0
    reconnect_timeout_s: float = 180.0


def rss_kib(pid: int) -> int:
    """The resident set of ``pid`` in KiB (``VmRSS`` of ``/proc/<pid>/status``)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for process {pid}")


class Database:
    """The measurements' reads, as the database's administrator, on one connection."""

    def __init__(self, dsn: str) -> None:
        self._connection = psycopg.connect(dsn, autocommit=True, connect_timeout=5)

    def close(self) -> None:
        self._connection.close()

    def connected(self, agent_ids: Sequence[str], since_epoch: float | None = None) -> list[float]:
        """``connected_at`` (epoch seconds) of the agents a tunnel holds, connected after ``since``."""
        rows = self._connection.execute(
            "select extract(epoch from connected_at)::float8 from public.agents"
            " where id = any(%s::uuid[]) and connection_id is not null"
            " and connected_at > to_timestamp(%s)",
            (list(agent_ids), since_epoch or 0.0),
        ).fetchall()
        return [float(row[0]) for row in rows]

    def open_commands(self, command_ids: Sequence[str]) -> int:
        row = self._connection.execute(
            "select count(*) from public.agent_commands where id = any(%s::uuid[])"
            " and status not in ('succeeded', 'failed', 'expired', 'cancelled')",
            (list(command_ids),),
        ).fetchone()
        return int(row[0]) if row else 0

    def outcomes(self, command_ids: Sequence[str]) -> list[tuple[str, float, float, float]]:
        """(status, round trip s, created epoch, finished epoch) of each command."""
        rows = self._connection.execute(
            "select status, extract(epoch from finished_at - created_at)::float8,"
            " extract(epoch from created_at)::float8, extract(epoch from finished_at)::float8"
            " from public.agent_commands where id = any(%s::uuid[])",
            (list(command_ids),),
        ).fetchall()
        return [(str(r[0]), float(r[1] or 0), float(r[2]), float(r[3] or r[2])) for r in rows]


async def _wait(condition: Callable[[], bool], timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if await asyncio.to_thread(condition):
            return True
        await asyncio.sleep(POLL_S)
    return await asyncio.to_thread(condition)


async def pair_agents(target: ScaleTarget, count: int, concurrency: int) -> list[RegisteredAgent]:
    api = AsyncAgentsApi(target.api_url, concurrency=concurrency)
    gate = asyncio.Semaphore(concurrency)

    async def one(index: int) -> RegisteredAgent:
        async with gate:
            return await api.pair(target.infra_token, f"scale-{index:05d}")

    try:
        return list(await asyncio.gather(*(one(index) for index in range(count))))
    finally:
        await api.aclose()


async def send_commands(
    target: ScaleTarget, agents: Sequence[RegisteredAgent], seconds: float, enqueuers: int
) -> list[tuple[str, str]]:
    """(agent id, command id) of every command sent: agents in turn, for ``seconds`` and until each
    agent got one."""
    api = AsyncAgentsApi(target.api_url, concurrency=enqueuers)
    turn = itertools.cycle(agents)
    sent: list[tuple[str, str]] = []
    ends = time.monotonic() + seconds

    async def loop() -> None:
        while time.monotonic() < ends or len(sent) < len(agents):
            agent = next(turn)
            command = await api.enqueue(target.infra_token, agent.agent_id, COMMAND_KIND)
            sent.append((agent.agent_id, str(command["id"])))

    try:
        await asyncio.gather(*(loop() for _ in range(enqueuers)))
    finally:
        await api.aclose()
    return sent


async def measure(
    target: ScaleTarget, options: Options, workdir: Path, say: Callable[[str], None]
) -> Figures:
    notes: list[str] = []
    say(f"pairing {options.agents:,} agents")
    began = time.monotonic()
    agents = await pair_agents(target, options.agents, options.pair_concurrency)
    say(f"paired in {time.monotonic() - began:.1f} s")
    ids = [agent.agent_id for agent in agents]
    database = Database(target.database_url)
    fleet = Fleet(agents, target.api_url, workdir / "fleet", processes=options.processes)
    try:
        rss_before = rss_kib(target.api_pid())
        fleet_started = time.monotonic()
        await asyncio.to_thread(fleet.start)
        all_in = await _wait(lambda: len(database.connected(ids)) == len(ids), options.connect_timeout_s)
        connect_s = time.monotonic() - fleet_started
        if not all_in:
            notes.append(
                f"only {len(database.connected(ids))} agents connected in {options.connect_timeout_s} s"
            )
        say(f"{len(database.connected(ids)):,} agents connected in {connect_s:.1f} s")
        await asyncio.sleep(SETTLE_S)
        rss_connected = rss_kib(target.api_pid())

        say(f"sending {COMMAND_KIND} for {options.command_seconds:.0f} s ({options.enqueuers} enqueuers)")
        sent = await send_commands(target, agents, options.command_seconds, options.enqueuers)
        command_ids = [command_id for _agent, command_id in sent]
        finished = await _wait(lambda: database.open_commands(command_ids) == 0, options.finish_timeout_s)
        if not finished:
            notes.append(
                f"{database.open_commands(command_ids)} commands open after {options.finish_timeout_s} s"
            )
        outcomes = database.outcomes(command_ids)
        succeeded = [outcome for outcome in outcomes if outcome[0] == "succeeded"]
        window = (max(o[3] for o in succeeded) - min(o[2] for o in succeeded)) if succeeded else 0.0
        say(f"{len(succeeded):,} of {len(sent):,} commands succeeded")

        reconnects = None
        if options.restart:
            reconnects = await restart_and_watch(target, database, ids, options, say)
    finally:
        database.close()
        heartbeat_window = time.monotonic() - fleet_started
        stats = await asyncio.to_thread(fleet.stop)
    return Figures(
        agents=options.agents,
        fleet_processes=min(options.processes, options.agents),
        connect_s=connect_s,
        commands=len(sent),
        succeeded=len(succeeded),
        command_window_s=window,
        round_trips_s=tuple(outcome[1] for outcome in succeeded),
        agents_commanded=len({agent_id for agent_id, _command in sent}),
        duplicate_runs=_duplicate_runs(stats),
        rss_before_kib=rss_before,
        rss_connected_kib=rss_connected,
        heartbeats=sum(int(item["heartbeats_sent"]) for item in stats),
        heartbeat_window_s=heartbeat_window,
        reconnects=reconnects,
        load_average=" ".join(f"{value:.2f}" for value in os.getloadavg()),
        notes=tuple(notes),
    )


async def restart_and_watch(
    target: ScaleTarget, database: Database, ids: Sequence[str], options: Options, say: Callable[[str], None]
) -> Reconnects:
    say("restarting the API")
    began = time.time()
    await asyncio.to_thread(target.restart_api)
    ready_after = time.time() - began
    say(f"API ready again after {ready_after:.1f} s; waiting for the agents")
    await _wait(lambda: len(database.connected(ids, began)) == len(ids), options.reconnect_timeout_s)
    arrivals = database.connected(ids, began)
    return Reconnects(
        agents=len(ids),
        offsets_s=tuple(sorted(arrival - began for arrival in arrivals)),
        api_ready_after_s=ready_after,
    )


def _duplicate_runs(stats: Sequence[dict[str, Any]]) -> int:
    return sum(1 for item in stats for count in item["runs"].values() if int(count) > 1)
