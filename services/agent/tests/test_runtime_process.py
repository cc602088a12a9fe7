"""Real agent processes: killed mid-command then restarted (INTERRUPTED, never re-run), and
`botmox-agent run` itself: connected, `status` while it runs, SIGTERM, a revoked agent's exit code."""

from __future__ import annotations

import asyncio
import json
import signal
import sys
from pathlib import Path

from runtime_support import CREDENTIAL, FakeControlPlane, agent_env, eventually, paired_agent, running_agent
from typer.testing import CliRunner
from vault_support import SECRET

from botmox_agent.__main__ import app
from botmox_agent.runtime import AgentSettings
from botmox_agent.runtime._credential import open_vault
from botmox_agent.vault import SecretValue

TESTS = Path(__file__).parent


async def test_an_agent_killed_mid_command_reports_it_interrupted_and_never_reruns_it(tmp_path: Path) -> None:
    async with FakeControlPlane() as plane:
        settings = paired_agent(tmp_path, plane.url)
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            str(TESTS / "agent_process.py"),
            env=agent_env(settings),
            stderr=asyncio.subprocess.PIPE,
        )
        try:
            await plane.wait_welcomed()
            await plane.send_command("cmd-killed")
            await eventually(lambda: len(plane.acks("cmd-killed")) == 1)
        finally:
            process.kill()
            await process.wait()
        async with running_agent(settings) as running:
            await plane.wait_welcomed(connections=2)
            await plane.send_command("cmd-killed")
            await eventually(lambda: len(plane.results("cmd-killed")) == 1)
            (result,) = plane.results("cmd-killed")
            assert not result.ok
            assert result.error is not None
            assert result.error.code == "INTERRUPTED"
            assert running.executors.calls == []
            recovered = [e for e in running.events() if e["event"] == "journal.recovered_interrupted"]
            assert recovered[0]["command_ids"] == ["cmd-killed"]


async def test_botmox_agent_run_connects_reports_status_and_stops_on_sigterm(tmp_path: Path) -> None:
    async with FakeControlPlane() as plane:
        settings = paired_agent(tmp_path, plane.url)
        pve1 = {"url": "https://127.0.0.1:9", "token_id": "user@pam!botmox", "token_secret": SECRET}
        open_vault(settings).set("proxmox/pve1", SecretValue(json.dumps(pve1)))
        env = agent_env(settings)
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "botmox_agent",
            "run",
            env=env,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        try:
            await plane.wait_welcomed()
            # The production executors: Proxmox VE's kinds, and SyncThing's with its default URL.
            hello = plane.hello()
            assert hello.agent_id == settings_agent_id(settings)
            assert {"proxmox.vm.clone", "syncthing.status"} <= set(hello.capabilities)
            state = settings.state_dir / "status.json"
            await eventually(lambda: state.exists() and json.loads(state.read_text())["state"] == "connected")
            # Through the production executors and the vault: a Proxmox host that does not answer.
            await plane.send_command("pve-1", "proxmox.nodes.list", {"credential": "secret://proxmox/pve1"})
            await eventually(lambda: len(plane.results("pve-1")) == 1, within_s=30)
            (result,) = plane.results("pve-1")
            assert result.error is not None
            assert result.error.code == "PROXMOX_UNREACHABLE"
            assert SECRET not in result.model_dump_json()
            status = await asyncio.to_thread(CliRunner().invoke, app, ["status", "--json"], env=env)
            assert status.exit_code == 0, status.stderr
            report = json.loads(status.stdout)
            assert report["connected"] is True
            assert report["identity"]["agent_id"] == settings_agent_id(settings)
            process.send_signal(signal.SIGTERM)
            stdout, stderr = await asyncio.wait_for(process.communicate(), 20)
        finally:
            if process.returncode is None:
                process.kill()
                await process.wait()
        assert process.returncode == 0, stderr.decode()
        assert plane.current.ws.close_code == 1001
        events = [json.loads(line)["event"] for line in stderr.decode().splitlines()]
        assert {"agent.started", "agent.connected", "agent.stopped"} <= set(events)
        assert CREDENTIAL not in stdout.decode() + stderr.decode()
        assert SECRET not in stdout.decode() + stderr.decode()
        after = CliRunner().invoke(app, ["status"], env=env)
        assert after.exit_code == 3
        assert "not running" in after.stdout


async def test_botmox_agent_run_exits_21_when_revoked(tmp_path: Path) -> None:
    async with FakeControlPlane() as plane:
        plane.refuse_next = [4403]
        settings = paired_agent(tmp_path, plane.url)
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "botmox_agent",
            "run",
            env=agent_env(settings),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        _, stderr = await asyncio.wait_for(process.communicate(), 20)
    assert process.returncode == 21
    assert "revoked" in stderr.decode()
    assert plane.attempts == 1


def test_botmox_agent_run_without_identity_or_code_exits_10(tmp_path: Path) -> None:
    settings = paired_agent(tmp_path, "http://127.0.0.1:9")
    (settings.state_dir / "identity.json").unlink()
    result = CliRunner().invoke(app, ["run"], env=agent_env(settings))
    assert result.exit_code == 10
    assert "not paired" in result.stderr


def settings_agent_id(settings: AgentSettings) -> str:
    agent_id = json.loads((settings.state_dir / "identity.json").read_text())["agent_id"]
    assert isinstance(agent_id, str)
    return agent_id
