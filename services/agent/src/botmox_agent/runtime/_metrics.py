"""The agent's Prometheus metrics (names in docs/agent-protocol.md's neighbour, seams: ``botmox_agent_*``),
in a registry of their own per runtime: no process-wide state, so tests and several runtimes in one
process do not share counters."""

from __future__ import annotations

from typing import Final

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

# The outcomes counted: ran and succeeded or failed, answered from the journal, refused without running.
SUCCEEDED: Final = "succeeded"
FAILED: Final = "failed"
REPLAYED: Final = "replayed"
REFUSED: Final = "refused"


class AgentMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.connected = Gauge(
            "botmox_agent_connected",
            "1 while a welcome arrived on the current connection, else 0",
            registry=self.registry,
        )
        self.reconnects = Counter(
            "botmox_agent_reconnects",
            "Connection attempts after the first (after a drop or a failed attempt)",
            registry=self.registry,
        )
        self.commands = Counter(
            "botmox_agent_commands",
            "Commands received, by kind and outcome (succeeded, failed, replayed, refused)",
            ["kind", "outcome"],
            registry=self.registry,
        )
        self.command_duration = Histogram(
            "botmox_agent_command_duration_seconds",
            "How long a command ran on the agent, by kind",
            ["kind"],
            buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 900),
            registry=self.registry,
        )

    def exposition(self) -> bytes:
        return generate_latest(self.registry)
