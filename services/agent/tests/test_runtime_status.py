"""`botmox-agent status`: the identity, the connection from status.json and the last commands from the
journal, read without writing; exit 0 when connected, 3 otherwise."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from runtime_support import (
    AGENT_ID,
    TENANT_ID,
    FakeControlPlane,
    agent_env,
    eventually,
    paired_agent,
    running_agent,
)
from typer.testing import CliRunner

from botmox_agent.__main__ import app
from botmox_agent.runtime import StateDir
from botmox_agent.runtime._journal import read_recent


async def test_status_shows_the_connection_and_the_last_commands(tmp_path: Path) -> None:
    async with FakeControlPlane() as plane:
        settings = paired_agent(tmp_path, plane.url)
        env = agent_env(settings)
        async with running_agent(settings):
            await plane.wait_welcomed()
            await plane.send_command("cmd-1")
            await plane.send_command(
                "cmd-2",
                "proxmox.vm.start",
                {"credential": "secret://proxmox/pve1", "node": "pve1", "vmid": 101},
            )
            await eventually(lambda: len(plane.results("cmd-2")) == 1)
            state = StateDir(settings.state_dir)
            await eventually(lambda: (state.read_status() or {}).get("commands_run") == 2)
            as_json = await asyncio.to_thread(
                CliRunner().invoke, app, ["status", "--json", "--last", "5"], env=env
            )
            text = await asyncio.to_thread(CliRunner().invoke, app, ["status"], env=env)
        assert as_json.exit_code == 0, as_json.stderr
        report = json.loads(as_json.stdout)
        assert report["connected"] is True
        assert report["state"] == "connected"
        assert report["identity"]["tenant_id"] == TENANT_ID
        assert [(c["command_id"], c["outcome"], c["error_code"]) for c in report["recent_commands"]] == [
            ("cmd-2", "failed", "PROXMOX_UNREACHABLE"),
            ("cmd-1", "succeeded", None),
        ]
        assert text.exit_code == 0
        assert AGENT_ID in text.stdout
        assert "cmd-2  proxmox.vm.start  failed PROXMOX_UNREACHABLE" in text.stdout
        stopped = CliRunner().invoke(app, ["status", "--json"], env=env)
        assert stopped.exit_code == 3
        assert json.loads(stopped.stdout)["state"] == "not running"


def test_status_of_a_dead_process_is_not_running(tmp_path: Path) -> None:
    settings = paired_agent(tmp_path, "http://127.0.0.1:9")
    status_file = settings.state_dir / "status.json"
    status_file.write_text(json.dumps({"pid": 2**22 + 12345, "state": "connected"}))
    result = CliRunner().invoke(app, ["status", "--json"], env=agent_env(settings))
    assert result.exit_code == 3
    report = json.loads(result.stdout)
    assert report["running"] is False
    assert report["connected"] is False


def test_reading_the_journal_creates_nothing(tmp_path: Path) -> None:
    path = tmp_path / "journal.sqlite3"
    assert read_recent(path, 10) == []
    assert not path.exists()
