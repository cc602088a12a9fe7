"""The API's Prometheus metrics (``GET /metrics``), every name in this one place: the agent tunnel's,
named as ``docs/agent-protocol.md`` and the issue's seams fix them, and the requests' and store
errors' (counted by ``request_metrics.RequestMetrics``), which the deploy's alert rules
(``deploy/tasks/templates/prometheus/botmox-rules.yml.j2``) query by these names and labels.

One ``ApiMetrics`` per application, in a registry of its own (no process-global state: two apps in
one process, as the tests run them, count apart). With several workers (``API_WORKERS`` > 1) each
worker is a process of its own; ``python -m botmox_api`` then points ``PROMETHEUS_MULTIPROC_DIR`` at a
temporary directory made for that start and removed at its end (``__main__``), every worker writes
its values there, and ``render`` sums them across workers (prometheus-client's multiprocess mode).
One limit: the gauge sums the workers' files (``livesum``), and uvicorn does not tell
prometheus-client when it replaces a worker that died, so such a worker's last gauge value stays in
the sum until the next start.
"""

from __future__ import annotations

import os
from typing import Final

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4
from prometheus_client.multiprocess import MultiProcessCollector

MULTIPROCESS_ENV: Final = "PROMETHEUS_MULTIPROC_DIR"
# The text format every Prometheus version scrapes (what generate_latest writes for these names).
CONTENT_TYPE: Final = CONTENT_TYPE_PLAIN_0_0_4

# Enqueue to stored result: from a fraction of a second to the longest deadline's order.
LATENCY_BUCKETS_S: Final = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0)
# A request, as the API measures it (gate in to last byte out): a hot read takes well under a
# millisecond in process, a store round trip a few, a store timeout 5 s; past 10 s is +Inf.
REQUEST_BUCKETS_S: Final = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

REQUEST_LABELS: Final = ("method", "route", "status", "backend")
REQUEST_DURATION_LABELS: Final = ("method", "route", "backend")
STORE_ERROR_LABELS: Final = ("store", "operation", "kind")


class ApiMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.agents_connected = Gauge(
            "botmox_api_agents_connected",
            "Agent tunnels open on this API (every worker's, summed)",
            registry=self.registry,
            multiprocess_mode="livesum",
        )
        self.agent_connections = Counter(
            "botmox_api_agent_connections",
            "Agent tunnels opened (a hello accepted)",
            registry=self.registry,
        )
        self.agent_commands = Counter(
            "botmox_api_agent_commands",
            "Agent command outcomes stored, by kind and outcome (succeeded, failed, expired)",
            ("kind", "outcome"),
            registry=self.registry,
        )
        self.agent_command_latency = Histogram(
            "botmox_api_agent_command_latency_seconds",
            "From a command's enqueue to its stored result",
            ("kind",),
            buckets=LATENCY_BUCKETS_S,
            registry=self.registry,
        )
        self.requests = Counter(
            "botmox_api_requests",
            "HTTP requests answered, by method, route template, status and DATA_BACKEND",
            REQUEST_LABELS,
            registry=self.registry,
        )
        self.request_duration = Histogram(
            "botmox_api_request_duration_seconds",
            "HTTP request duration, from the request gate to the answer's last byte",
            REQUEST_DURATION_LABELS,
            buckets=REQUEST_BUCKETS_S,
            registry=self.registry,
        )
        self.store_errors = Counter(
            "botmox_api_store_errors",
            "Store failures answered to a client (502 query_failed, 503 not_configured)",
            STORE_ERROR_LABELS,
            registry=self.registry,
        )

    def render(self) -> bytes:
        """The exposition text: this app's metrics, or every worker's in multiprocess mode."""
        directory = os.environ.get(MULTIPROCESS_ENV)
        if directory:
            registry = CollectorRegistry()
            MultiProcessCollector(registry, path=directory)  # type: ignore[no-untyped-call]
            return generate_latest(registry)
        return generate_latest(self.registry)
