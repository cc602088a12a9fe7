"""The Proxmox VE kinds against recorded PVE 8 API exchanges (recordings/proxmox/)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from executors_support import PROXMOX_REF, ProgressLog, proxmox_entry, resolver, vault_with
from proxmox_replay import Replay
from pydantic import BaseModel, JsonValue

from botmox_agent.executors import (
    CommandFailed,
    Executors,
    ExecutorSettings,
    build_executors,
    command_deadline,
)
from botmox_agent.vault import SecretRef, SecretValue, Vault
from botmox_protocol import COMMAND_KINDS

TOKEN_SECRET = "5f1c3a9e-7b2d-4e86-9a10-c4d2e8f7b613"
SETTINGS = ExecutorSettings(syncthing_url=None, proxmox_poll_interval=0, proxmox_progress_interval=1e-9)


@dataclass
class Agent:
    executors: Executors
    replay: Replay
    vault: Vault

    async def run(self, kind: str, progress: ProgressLog | None = None, **params: Any) -> JsonValue:
        model: BaseModel = COMMAND_KINDS.validate(kind, {"credential": PROXMOX_REF, **params})
        return await self.executors.run(kind, model, progress or ProgressLog())

    async def fails(self, kind: str, code: str, **params: Any) -> CommandFailed:
        with pytest.raises(CommandFailed) as failure:
            await self.run(kind, **params)
        assert failure.value.code == code, failure.value
        assert TOKEN_SECRET not in failure.value.message
        return failure.value


@pytest.fixture
async def agent(tmp_path: Path) -> AsyncIterator[Agent]:
    replay = Replay(TOKEN_SECRET)
    vault = vault_with(tmp_path / "vault.json", {PROXMOX_REF: proxmox_entry(TOKEN_SECRET)})
    executors = build_executors(SETTINGS, resolver(vault), transport=replay.transport())
    try:
        yield Agent(executors, replay, vault)
    finally:
        await executors.aclose()


async def test_nodes_list(agent: Agent) -> None:
    agent.replay.load("nodes_list")
    assert await agent.run("proxmox.nodes.list") == {
        "nodes": [
            {
                "node": "pve1",
                "status": "online",
                "cpu": 0.0418,
                "maxcpu": 16,
                "mem": 23622320128,
                "maxmem": 67325480960,
                "uptime": 1209600,
            },
            {
                "node": "pve2",
                "status": "offline",
                "cpu": None,
                "maxcpu": None,
                "mem": None,
                "maxmem": None,
                "uptime": None,
            },
        ]
    }
    agent.replay.assert_done()


async def test_vms_list_sorted_by_vmid_with_templates_marked(agent: Agent) -> None:
    agent.replay.load("vms_list")
    result = await agent.run("proxmox.vms.list", node="pve1")
    assert isinstance(result, dict)
    assert result["node"] == "pve1"
    vm = {"status": "stopped", "cpus": 2, "uptime": 0, "template": False}
    assert result["vms"] == [
        {
            **vm,
            "vmid": 100,
            "name": "bot-01",
            "status": "running",
            "cpus": 4,
            "maxmem": 8589934592,
            "uptime": 86400,
        },
        {**vm, "vmid": 101, "name": "bot-02", "maxmem": 4294967296},
        {**vm, "vmid": 9000, "name": "debian-12-template", "maxmem": 2147483648, "template": True},
    ]
    agent.replay.assert_done()


async def test_vm_status(agent: Agent) -> None:
    agent.replay.load("vm_status")
    assert await agent.run("proxmox.vm.status", node="pve1", vmid=100) == {
        "node": "pve1",
        "vmid": 100,
        "name": "bot-01",
        "status": "running",
        "qmpstatus": "running",
        "uptime": 86400,
        "cpus": 4,
        "maxmem": 8589934592,
        "mem": 3221225472,
        "lock": None,
        "template": False,
    }
    agent.replay.assert_done()


async def test_vm_start_follows_its_task_until_it_stops(agent: Agent) -> None:
    agent.replay.load("vm_start")
    progress = ProgressLog()
    result = await agent.run("proxmox.vm.start", progress, node="pve1", vmid=101)
    assert result == {
        "node": "pve1",
        "vmid": 101,
        "action": "start",
        "task": "UPID:pve1:0003A2F1:0B5E21C4:6752F1A0:qmstart:101:root@pam!botmox:",
        "exitstatus": "OK",
    }
    agent.replay.assert_done()
    messages = [message for _, message in progress.reports]
    assert messages[0] == "Proxmox task qmstart started on pve1"
    assert any(message and "running for" in message for message in messages[1:])
    assert all(percent is None for percent, _ in progress.reports)


async def test_vm_stop(agent: Agent) -> None:
    agent.replay.load("vm_stop")
    result = await agent.run("proxmox.vm.stop", node="pve1", vmid=100)
    assert isinstance(result, dict)
    assert (result["action"], result["exitstatus"]) == ("stop", "OK")
    agent.replay.assert_done()


async def test_a_failed_task_is_proxmox_task_failed(agent: Agent) -> None:
    agent.replay.load("vm_start_failed")
    failure = await agent.fails("proxmox.vm.start", "PROXMOX_TASK_FAILED", node="pve1", vmid=101)
    assert "start failed: QEMU exited with code 1" in failure.message
    assert "UPID:pve1:0003A31C" in failure.message
    agent.replay.assert_done()


async def test_a_task_running_at_the_deadline_is_a_timeout(agent: Agent) -> None:
    agent.replay.load("vm_start_still_running")
    with command_deadline(0):
        failure = await agent.fails("proxmox.vm.start", "PROXMOX_TASK_TIMEOUT", node="pve1", vmid=101)
    assert "goes on on the host" in failure.message
    agent.replay.assert_done()


async def test_vm_clone_full_to_another_node_into_a_pool(agent: Agent) -> None:
    agent.replay.load("vm_clone")
    result = await agent.run(
        "proxmox.vm.clone",
        node="pve1",
        template_vmid=9000,
        new_vmid=200,
        name="bot-03",
        target_node="pve2",
        pool="bots",
    )
    assert result == {
        "node": "pve2",
        "vmid": 200,
        "name": "bot-03",
        "template_node": "pve1",
        "template_vmid": 9000,
        "full": True,
        "task": "UPID:pve1:0003A4B7:0B5E4102:6752F1E6:qmclone:9000:root@pam!botmox:",
        "exitstatus": "OK",
    }
    agent.replay.assert_done()


async def test_a_linked_clone_with_warnings_succeeds(agent: Agent) -> None:
    agent.replay.load("vm_clone_linked")
    result = await agent.run(
        "proxmox.vm.clone", node="pve1", template_vmid=9000, new_vmid=201, name="bot-04", full=False
    )
    assert isinstance(result, dict)
    assert (result["node"], result["full"], result["exitstatus"]) == ("pve1", False, "WARNINGS: 1")
    agent.replay.assert_done()


async def test_a_vm_that_does_not_exist_is_not_found(agent: Agent) -> None:
    agent.replay.load("vm_status_not_found")
    failure = await agent.fails("proxmox.vm.status", "PROXMOX_NOT_FOUND", node="pve1", vmid=999)
    assert "VM 999 on node pve1" in failure.message
    assert "999.conf' does not exist" in failure.message
    agent.replay.assert_done()


async def test_a_node_the_cluster_does_not_have_is_not_found(agent: Agent) -> None:
    agent.replay.load("node_not_found")
    failure = await agent.fails("proxmox.vms.list", "PROXMOX_NOT_FOUND", node="pve9")
    assert "no node pve9" in failure.message
    agent.replay.assert_done()


async def test_a_node_that_is_down_is_unreachable(agent: Agent) -> None:
    agent.replay.load("node_offline")
    failure = await agent.fails("proxmox.vms.list", "PROXMOX_UNREACHABLE", node="pve2")
    assert "No route to host" in failure.message
    agent.replay.assert_done()


async def test_a_refused_token_is_auth_failed(agent: Agent) -> None:
    agent.replay.load("auth_failed")
    failure = await agent.fails("proxmox.nodes.list", "PROXMOX_AUTH_FAILED")
    assert "root@pam!botmox" in failure.message
    agent.replay.assert_done()


async def test_a_missing_privilege_is_permission_denied(agent: Agent) -> None:
    agent.replay.load("permission_denied")
    failure = await agent.fails("proxmox.vm.stop", "PROXMOX_PERMISSION_DENIED", node="pve1", vmid=100)
    assert "VM.PowerMgmt" in failure.message
    agent.replay.assert_done()


async def test_a_refused_parameter_is_proxmox_error_with_its_reason(agent: Agent) -> None:
    agent.replay.load("clone_bad_param")
    failure = await agent.fails(
        "proxmox.vm.clone", "PROXMOX_ERROR", node="pve1", template_vmid=9000, new_vmid=200, name="bot-03"
    )
    assert "400" in failure.message
    assert "newid: VM 200 already exists" in failure.message
    agent.replay.assert_done()


async def test_a_request_outside_the_recording_fails_the_test(agent: Agent) -> None:
    agent.replay.load("vm_stop")
    with pytest.raises(AssertionError, match="expected POST"):
        await agent.run("proxmox.vm.start", node="pve1", vmid=100)


async def test_the_token_is_read_again_for_every_command(agent: Agent) -> None:
    agent.replay.load("nodes_list")
    await agent.run("proxmox.nodes.list")
    rotated = "0b7e61d2-9c4f-4a3e-8d21-6f5a9e0c1b47"
    agent.vault.set(SecretRef.parse(PROXMOX_REF), SecretValue(proxmox_entry(rotated)))
    agent.replay.token_secret = rotated
    agent.replay.load("nodes_list")
    await agent.run("proxmox.nodes.list")
    agent.replay.assert_done()


@pytest.mark.parametrize(
    ("entry", "problem"),
    [
        (TOKEN_SECRET, "not JSON text"),
        (f'["{TOKEN_SECRET}"]', "not a JSON object"),
        (proxmox_entry(TOKEN_SECRET, url="ftp://pve1:8006"), '"url"'),
        (proxmox_entry(TOKEN_SECRET, url=f"https://root:{TOKEN_SECRET}@pve1:8006"), '"url"'),
        (proxmox_entry(TOKEN_SECRET, url="https://pve1:8006/api2/json"), "path"),
        (proxmox_entry(TOKEN_SECRET, token_id="root@pam"), '"token_id"'),
        (proxmox_entry("has a space"), '"token_secret"'),
        (proxmox_entry(TOKEN_SECRET, verify_tls="yes"), '"verify_tls"'),
        (proxmox_entry(TOKEN_SECRET, **{TOKEN_SECRET: 1}), "unknown field"),
    ],
)
async def test_a_malformed_entry_is_credential_invalid_without_its_value(
    tmp_path: Path, entry: str, problem: str
) -> None:
    failure = await nodes_list_failure(tmp_path, entry, Replay(TOKEN_SECRET).transport())
    assert failure.code == "CREDENTIAL_INVALID"
    assert PROXMOX_REF in failure.message
    assert problem in failure.message
    assert TOKEN_SECRET not in failure.message
    assert TOKEN_SECRET not in repr(failure.__cause__) + repr(failure.__context__)


async def nodes_list_failure(tmp_path: Path, entry: str, transport: httpx.MockTransport) -> CommandFailed:
    """The CommandFailed of proxmox.nodes.list with ``entry`` in the vault and ``transport`` as network."""
    vault = vault_with(tmp_path / "vault.json", {PROXMOX_REF: entry})
    executors = build_executors(SETTINGS, resolver(vault), transport=transport)
    params = COMMAND_KINDS.validate("proxmox.nodes.list", {"credential": PROXMOX_REF})
    try:
        with pytest.raises(CommandFailed) as failure:
            await executors.run("proxmox.nodes.list", params, ProgressLog())
    finally:
        await executors.aclose()
    return failure.value


def raising(error: Callable[[httpx.Request], Exception]) -> httpx.MockTransport:
    def answer(request: httpx.Request) -> httpx.Response:
        raise error(request)

    return httpx.MockTransport(answer)


@pytest.mark.parametrize(
    ("error", "words"),
    [
        (
            lambda request: httpx.ConnectError("[Errno 111] Connection refused", request=request),
            "cannot connect",
        ),
        (lambda request: httpx.ReadTimeout("timed out", request=request), "timed out"),
        (
            lambda request: httpx.ConnectError(
                "[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed", request=request
            ),
            "TLS certificate is not trusted",
        ),
    ],
)
async def test_transport_errors_are_unreachable(
    tmp_path: Path, error: Callable[[httpx.Request], Exception], words: str
) -> None:
    failure = await nodes_list_failure(tmp_path, proxmox_entry(TOKEN_SECRET), raising(error))
    assert failure.code == "PROXMOX_UNREACHABLE"
    assert words in failure.message
    assert "https://pve1.example.test:8006" in failure.message


async def test_an_unreadable_ca_file_is_credential_invalid(tmp_path: Path) -> None:
    entry = proxmox_entry(TOKEN_SECRET, ca_file=str(tmp_path / "missing.pem"))
    failure = await nodes_list_failure(tmp_path, entry, Replay(TOKEN_SECRET).transport())
    assert failure.code == "CREDENTIAL_INVALID"
    assert "missing.pem" in failure.message


async def test_polling_waits_out_a_network_blip_but_not_an_outage(tmp_path: Path) -> None:
    replay = Replay(TOKEN_SECRET)
    replay.load("vm_start")
    answers = replay.transport()
    polls = 0
    outage = False

    async def flaky(request: httpx.Request) -> httpx.Response:
        nonlocal polls
        if "/tasks/" in request.url.path:
            polls += 1
            if outage or polls in (1, 3, 4):
                raise httpx.ConnectError("[Errno 113] No route to host", request=request)
        return await answers.handle_async_request(request)

    vault = vault_with(tmp_path / "vault.json", {PROXMOX_REF: proxmox_entry(TOKEN_SECRET)})
    executors = build_executors(SETTINGS, resolver(vault), transport=httpx.MockTransport(flaky))
    params = COMMAND_KINDS.validate(
        "proxmox.vm.start", {"credential": PROXMOX_REF, "node": "pve1", "vmid": 101}
    )
    try:
        result = await executors.run("proxmox.vm.start", params, ProgressLog())
        assert isinstance(result, dict)
        assert result["exitstatus"] == "OK"
        replay.assert_done()

        replay.load("vm_start")
        outage = True
        with pytest.raises(CommandFailed) as failure:
            await executors.run("proxmox.vm.start", params, ProgressLog())
    finally:
        await executors.aclose()
    assert failure.value.code == "PROXMOX_UNREACHABLE"
    assert "may still run on the host" in failure.value.message
