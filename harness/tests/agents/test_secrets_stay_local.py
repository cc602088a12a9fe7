"""Secrets stay on the agent's machine: with known secrets in the vault (a Proxmox host's API token and
the SyncThing API key), a run of commands that uses both is captured everywhere the control plane
could see it, and neither secret appears anywhere (issue 16, Tests: "Secrets").

Captured: every byte relayed by the TLS proxy in both directions and every WebSocket message decoded
from them (the frames), the API's log file, the agent's structured log, its state directory and vault
file, its ``/metrics``, and every row of the agent tables as the database's administrator reads them.
The commands reach a real SyncThing (which refuses any other key, so a success proves the key was
used) and a Proxmox host that is not there (the failure path, where an error message could quote a
credential).
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import LiteralString

import httpx
import pytest
from agent_suite import AgentFactory, Tenant, finished_command
from real_agent import GatedExecutors

from botmox_agent.executors import Executors, ExecutorSettings, SecretResolver, build_executors
from botmox_agent.runtime import AgentSettings
from harness import processes
from harness.fixtures.agents_api import AgentsApi
from harness.fixtures.cli_stack import StackUnderTest
from harness.fixtures.tls_proxy import TlsTerminatingProxy
from harness.fixtures.tools import require_tool
from harness.fixtures.websocket_tap import Direction
from harness.syncthing import SyncthingProcess

pytestmark = pytest.mark.integration

# A well-formed device id no SyncThing here knows (the protocol doc's example).
UNKNOWN_DEVICE = "MFZWI3D-BONSGYC-YLTMRWG-C43ENR5-QXGZDMM-FZWI3DP-BONSGYY-LTMRWAD"

# Every row of the agent tables, whole, as JSON text.
DUMPS: tuple[LiteralString, ...] = (
    "select row_to_json(t)::text as row from public.agent_pairings as t",
    "select row_to_json(t)::text as row from public.agents as t",
    "select row_to_json(t)::text as row from public.agent_commands as t",
)


@pytest.fixture
def syncthing(tmp_path: Path) -> Iterator[SyncthingProcess]:
    require_tool("syncthing", "apt-get install syncthing; .ci/programs.tsv")
    with SyncthingProcess(tmp_path / "syncthing", api_key=f"st-e2e-{secrets.token_hex(16)}") as started:
        yield started


def _database_rows(stack: StackUnderTest) -> str:
    dumped = []
    for query in DUMPS:
        rows = stack.sql(query)
        dumped += [row["row"] for row in rows]
    return "\n".join(dumped)


def _files_under(directory: Path) -> bytes:
    return b"".join(path.read_bytes() for path in sorted(directory.rglob("*")) if path.is_file())


def test_known_secrets_appear_in_no_frame_log_or_row(
    agents: AgentFactory,
    api: AgentsApi,
    tenant: Callable[[], Tenant],
    agent_stack: StackUnderTest,
    proxy: TlsTerminatingProxy,
    syncthing: SyncthingProcess,
) -> None:
    owner = tenant()
    proxmox_secret = f"pve-token-{secrets.token_hex(16)}"
    nowhere = f"https://127.0.0.1:{processes.free_port()}"
    vault_entries = {
        "syncthing/api-key": syncthing.api_key,
        "proxmox/pve1": json.dumps(
            {"url": nowhere, "token_id": "e2e@pve!botmox", "token_secret": proxmox_secret, "verify_tls": True}
        ),
    }
    known = {"the SyncThing API key": syncthing.api_key, "the Proxmox token secret": proxmox_secret}
    settings = agents.settings(owner, "secrets-agent", syncthing_url=syncthing.url)
    executor_settings = ExecutorSettings(syncthing_url=syncthing.url, request_timeout=5.0)
    built: list[GatedExecutors] = []

    def real_executors(_settings: AgentSettings, resolver: SecretResolver) -> Executors:
        # The real executors, reading the vault through the runtime's resolver, counted.
        built.append(GatedExecutors(build_executors(executor_settings, resolver)))
        return built[-1]

    agent = agents.start(settings, real_executors, secrets=vault_entries)

    pve = {"credential": "secret://proxmox/pve1", "node": "pve1"}
    commands: list[tuple[str, dict[str, object]]] = [
        ("syncthing.status", {}),
        ("syncthing.folders.list", {}),
        ("syncthing.folder.rescan", {"folder_id": "not-shared-here"}),
        ("syncthing.device.pause", {"device_id": UNKNOWN_DEVICE}),
        ("proxmox.nodes.list", {"credential": "secret://proxmox/pve1"}),
        ("proxmox.vm.status", {**pve, "vmid": 101}),
        ("proxmox.vm.start", {**pve, "vmid": 101}),
        ("proxmox.vm.clone", {**pve, "template_vmid": 9000, "new_vmid": 124, "name": "bot-02"}),
    ]
    outcomes = {}
    for kind, params in commands:
        queued = api.enqueue(owner.token, agent.agent_id, kind, params)
        outcomes[kind] = finished_command(api, owner.token, agent.agent_id, queued["id"])
    # The commands really used the secrets: SyncThing answered the key, Proxmox was tried and failed.
    assert outcomes["syncthing.status"]["status"] == "succeeded", outcomes["syncthing.status"]
    assert outcomes["syncthing.folders.list"]["status"] == "succeeded"
    # SyncThing's refusals of an unknown folder or device: the error path, answered with the key.
    for kind in ("syncthing.folder.rescan", "syncthing.device.pause"):
        assert outcomes[kind]["status"] in {"succeeded", "failed"}, outcomes[kind]
    for kind in ("proxmox.nodes.list", "proxmox.vm.status", "proxmox.vm.start", "proxmox.vm.clone"):
        assert outcomes[kind]["status"] == "failed", outcomes[kind]
        assert outcomes[kind]["error"]["code"].startswith("PROXMOX_"), outcomes[kind]
    assert sum(built[0].runs.values()) == len(commands)
    metrics = httpx.get(f"http://127.0.0.1:{agent.http_port}/metrics", timeout=5, trust_env=False).text
    agent.stop()

    # Every tunnel the proxy relayed was read to the end (compressed or not): no frame escaped the search.
    assert proxy.record.undecodable_connections() == set()
    frames = proxy.record.text_messages()
    assert {"hello", "welcome", "command", "command.ack", "command.result"} <= {
        json.loads(f)["type"] for f in frames
    }
    captured = {
        "frames (decoded messages)": "\n".join(frames).encode(),
        "bytes to the API": proxy.record.raw_bytes(Direction.TO_SERVER),
        "bytes to the agent": proxy.record.raw_bytes(Direction.TO_CLIENT),
        "the API's log": agent_stack.log_text("api").encode(),
        "the agent's log": agent.log_text().encode(),
        "the agent's state directory": _files_under(settings.state_dir),
        "the agent's vault file": settings.vault.read_bytes(),
        "the agent's /metrics": metrics.encode(),
        "the agent tables' rows": _database_rows(agent_stack).encode(),
    }
    assert all(captured.values()), [name for name, data in captured.items() if not data]
    leaks = [
        f"{secret_name} in {place}"
        for secret_name, value in known.items()
        for place, data in captured.items()
        if value.encode() in data
    ]
    assert leaks == []
