"""A known secret in a real vault: no kind, succeeding or failing, lets it out.

Every kind runs once with the SyncThing API key and the Proxmox token secret set to ``SECRET`` (a real
SyncThing, the recorded Proxmox exchanges), then the failing paths that handle the value (a refused key,
a malformed entry). The secret must appear in no result, no progress report, no ``CommandFailed`` (nor
its chained exceptions) and no log record, stdlib (DEBUG and up, httpx and httpcore included) or
structlog.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import structlog.testing
from executors_support import PROXMOX_REF, ProgressLog, proxmox_entry, resolver, vault_with
from proxmox_replay import Replay
from vault_support import SECRET

from botmox_agent.executors import SYNCTHING_API_KEY_REF, CommandFailed, ExecutorSettings, build_executors
from botmox_agent.vault import SecretValue
from botmox_protocol import COMMAND_KINDS
from harness.syncthing import SyncthingProcess, new_api_key

DEVICE = "MFZWI3D-BONSGYC-YLTMRWG-C43ENR5-QXGZDMM-FZWI3DP-BONSGYY-LTMRWAD"
PROXMOX_RUNS: list[tuple[str, str, dict[str, Any]]] = [
    ("nodes_list", "proxmox.nodes.list", {}),
    ("vms_list", "proxmox.vms.list", {"node": "pve1"}),
    ("vm_status", "proxmox.vm.status", {"node": "pve1", "vmid": 100}),
    ("vm_start", "proxmox.vm.start", {"node": "pve1", "vmid": 101}),
    ("vm_stop", "proxmox.vm.stop", {"node": "pve1", "vmid": 100}),
    ("vm_clone", "proxmox.vm.clone", {"node": "pve1", "template_vmid": 9000, "new_vmid": 200, "name": "bot-03", "target_node": "pve2", "pool": "bots"}),  # noqa: E501
    ("vm_start_failed", "proxmox.vm.start", {"node": "pve1", "vmid": 101}),
    ("vm_status_not_found", "proxmox.vm.status", {"node": "pve1", "vmid": 999}),
    ("auth_failed", "proxmox.nodes.list", {}),
    ("permission_denied", "proxmox.vm.stop", {"node": "pve1", "vmid": 100}),
]  # fmt: skip
SYNCTHING_RUNS: list[tuple[str, dict[str, Any]]] = [
    ("syncthing.status", {}),
    ("syncthing.folders.list", {}),
    ("syncthing.folder.rescan", {"folder_id": "no-such-folder"}),
    ("syncthing.device.pause", {"device_id": DEVICE}),
    ("syncthing.device.resume", {"device_id": DEVICE}),
]


@pytest.fixture
def syncthing(tmp_path: Path) -> Iterator[SyncthingProcess]:
    with SyncthingProcess(tmp_path / "syncthing", api_key=SECRET) as process:
        yield process


class Capture:
    """Everything that leaves a command: results, failures, progress, log records."""

    def __init__(self) -> None:
        self.outputs: list[str] = []
        self.progress = ProgressLog()

    async def run(self, executors: Any, kind: str, params: dict[str, Any]) -> None:
        model = COMMAND_KINDS.validate(kind, params)
        try:
            result = await executors.run(kind, model, self.progress)
        except CommandFailed as failure:
            self.outputs.append(f"{failure.code} {failure.message} {failure!r} {failure.args!r}")
            self.outputs.append(repr(failure.__cause__) + repr(failure.__context__))
        else:
            self.outputs.append(json.dumps(result))


async def test_the_secret_leaves_through_nothing(
    tmp_path: Path, syncthing: SyncthingProcess, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    capture = Capture()
    covered: set[str] = set()
    vault = vault_with(
        tmp_path / "vault.json", {PROXMOX_REF: proxmox_entry(SECRET), str(SYNCTHING_API_KEY_REF): SECRET}
    )
    replay = Replay(SECRET)
    settings = ExecutorSettings(
        syncthing_url=syncthing.url, proxmox_poll_interval=0, proxmox_progress_interval=1e-9
    )
    with structlog.testing.capture_logs() as structured:
        executors = build_executors(settings, resolver(vault), transport=None)
        proxmox = build_executors(
            ExecutorSettings(syncthing_url=None, proxmox_poll_interval=0, proxmox_progress_interval=1e-9),
            resolver(vault),
            transport=replay.transport(),
        )
        try:
            for kind, params in SYNCTHING_RUNS:
                await capture.run(executors, kind, params)
                covered.add(kind)
            for recording, kind, params in PROXMOX_RUNS:
                replay.load(recording)
                await capture.run(proxmox, kind, {"credential": PROXMOX_REF, **params})
                covered.add(kind)
            replay.assert_done()
            # The failing paths that hold the value: SyncThing refusing it, an entry that is not JSON.
            syncthing_key = new_api_key()
            vault.set(SYNCTHING_API_KEY_REF, SecretValue(SECRET + syncthing_key))
            await capture.run(executors, "syncthing.status", {})
            vault.set(PROXMOX_REF, SecretValue(SECRET))
            await capture.run(proxmox, "proxmox.nodes.list", {"credential": PROXMOX_REF})
        finally:
            await executors.aclose()
            await proxmox.aclose()

    assert covered == COMMAND_KINDS.names()
    assert sum("FAILED" in output or "NOT_FOUND" in output for output in capture.outputs) >= 5
    assert any("CREDENTIAL_INVALID" in output for output in capture.outputs)
    assert any("SYNCTHING_AUTH_FAILED" in output for output in capture.outputs)
    assert caplog.records, "the capture saw the HTTP clients' records"
    logged = [f"{record.getMessage()} {record.__dict__!r}" for record in caplog.records]
    for where, texts in {
        "a result or failure": capture.outputs,
        "a progress report": [repr(report) for report in capture.progress.reports],
        "a log record": logged,
        "a structlog entry": [repr(entry) for entry in structured],
    }.items():
        leaking = [text for text in texts if SECRET in text]
        assert not leaking, f"the secret leaked through {where}: {leaking[:1]}"
