"""The SyncThing kinds against a real SyncThing (Debian's), started on 127.0.0.1 with a generated key."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from executors_support import ProgressLog, resolver, vault_with
from pydantic import JsonValue

from botmox_agent.executors import (
    SYNCTHING_API_KEY_REF,
    CommandFailed,
    Executors,
    ExecutorSettings,
    build_executors,
)
from botmox_agent.vault import SecretValue, Vault
from botmox_protocol import COMMAND_KINDS
from harness import processes
from harness.syncthing import SyncthingProcess, configure_home, new_api_key

FOLDER = "botmox-test"


@dataclass
class Syncthing:
    process: SyncthingProcess
    admin: httpx.Client
    folder_path: Path
    remote_device: str


@pytest.fixture(scope="module")
def syncthing(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Syncthing]:
    """One SyncThing for the module, with a folder and a remote device (valid, never reachable)."""
    root = tmp_path_factory.mktemp("syncthing")
    remote = configure_home(root / "remote-home", gui_port=processes.free_port(), api_key=new_api_key())
    folder_path = root / "folder"
    (folder_path / "docs").mkdir(parents=True)
    (folder_path / "docs" / "readme.txt").write_text("hello\n")
    with (
        SyncthingProcess(root / "home") as process,
        httpx.Client(base_url=process.url, headers={"X-API-Key": process.api_key}, trust_env=False) as admin,
    ):
        admin.post(
            "/rest/config/devices", json={"deviceID": remote, "name": "remote", "addresses": ["dynamic"]}
        ).raise_for_status()
        admin.post(
            "/rest/config/folders",
            json={
                "id": FOLDER,
                "label": "Bot-Mox test",
                "path": str(folder_path),
                "type": "sendreceive",
                "devices": [{"deviceID": process.device_id}, {"deviceID": remote}],
            },
        ).raise_for_status()
        yield Syncthing(process, admin, folder_path, remote)


@dataclass
class Agent:
    executors: Executors
    vault: Vault

    async def run(self, kind: str, **params: Any) -> JsonValue:
        return await self.executors.run(kind, COMMAND_KINDS.validate(kind, params), ProgressLog())

    async def fails(self, kind: str, code: str, **params: Any) -> CommandFailed:
        with pytest.raises(CommandFailed) as failure:
            await self.run(kind, **params)
        assert failure.value.code == code, failure.value
        return failure.value


async def agent_for(tmp_path: Path, url: str, entries: dict[str, str]) -> Agent:
    vault = vault_with(tmp_path / "vault.json", entries)
    return Agent(build_executors(ExecutorSettings(syncthing_url=url), resolver(vault)), vault)


@pytest.fixture
async def agent(tmp_path: Path, syncthing: Syncthing) -> AsyncIterator[Agent]:
    agent = await agent_for(tmp_path, syncthing.process.url, {"syncthing/api-key": syncthing.process.api_key})
    try:
        yield agent
    finally:
        await agent.executors.aclose()


async def test_status(agent: Agent, syncthing: Syncthing) -> None:
    result = await agent.run("syncthing.status")
    assert isinstance(result, dict)
    assert set(result) == {"device_id", "version", "os", "arch", "started_at", "uptime_seconds"}
    assert result["device_id"] == syncthing.process.device_id
    assert str(result["version"]).startswith("v1.")
    assert result["os"] == "linux"
    assert isinstance(result["uptime_seconds"], int)


async def test_folders_list(agent: Agent, syncthing: Syncthing) -> None:
    result = await agent.run("syncthing.folders.list")
    assert isinstance(result, dict)
    folders = result["folders"]
    assert isinstance(folders, list)
    [folder] = folders
    assert isinstance(folder, dict)
    state = folder.pop("state")
    assert folder == {
        "id": FOLDER,
        "label": "Bot-Mox test",
        "path": str(syncthing.folder_path),
        "type": "sendreceive",
        "paused": False,
    }
    assert state in {"idle", "scanning", "scan-waiting", "syncing", "sync-waiting", "sync-preparing"}


async def test_folder_rescan_whole_and_a_path_inside(agent: Agent) -> None:
    assert await agent.run("syncthing.folder.rescan", folder_id=FOLDER) == {
        "folder_id": FOLDER,
        "sub_path": None,
        "rescan": "requested",
    }
    result = await agent.run("syncthing.folder.rescan", folder_id=FOLDER, sub_path="docs")
    assert isinstance(result, dict)
    assert result["sub_path"] == "docs"


async def test_rescan_of_an_unknown_folder_is_not_found(agent: Agent) -> None:
    failure = await agent.fails("syncthing.folder.rescan", "SYNCTHING_NOT_FOUND", folder_id="no-such-folder")
    assert "'no-such-folder'" in failure.message


async def test_device_pause_and_resume(agent: Agent, syncthing: Syncthing) -> None:
    device = syncthing.remote_device

    def paused() -> bool:
        answer = syncthing.admin.get(f"/rest/config/devices/{device}")
        answer.raise_for_status()
        return bool(answer.json()["paused"])

    assert await agent.run("syncthing.device.pause", device_id=device) == {
        "device_id": device,
        "paused": True,
    }
    assert paused()
    assert await agent.run("syncthing.device.resume", device_id=device) == {
        "device_id": device,
        "paused": False,
    }
    assert not paused()


@pytest.mark.parametrize("kind", ["syncthing.device.pause", "syncthing.device.resume"])
async def test_an_unknown_device_is_not_found(agent: Agent, tmp_path: Path, kind: str) -> None:
    stranger = configure_home(tmp_path / "stranger", gui_port=processes.free_port(), api_key=new_api_key())
    failure = await agent.fails(kind, "SYNCTHING_NOT_FOUND", device_id=stranger)
    assert stranger in failure.message


async def test_a_wrong_key_is_auth_failed_and_a_rotated_key_is_picked_up(
    tmp_path: Path, syncthing: Syncthing
) -> None:
    wrong = new_api_key()
    agent = await agent_for(tmp_path, syncthing.process.url, {"syncthing/api-key": wrong})
    try:
        failure = await agent.fails("syncthing.status", "SYNCTHING_AUTH_FAILED")
        assert str(SYNCTHING_API_KEY_REF) in failure.message
        assert wrong not in failure.message
        agent.vault.set(SYNCTHING_API_KEY_REF, SecretValue(syncthing.process.api_key))
        assert isinstance(await agent.run("syncthing.status"), dict)
    finally:
        await agent.executors.aclose()


async def test_no_key_in_the_vault_is_secret_not_found(tmp_path: Path, syncthing: Syncthing) -> None:
    agent = await agent_for(tmp_path, syncthing.process.url, {})
    try:
        failure = await agent.fails("syncthing.folders.list", "SECRET_NOT_FOUND")
        assert "secret://syncthing/api-key" in failure.message
    finally:
        await agent.executors.aclose()


@pytest.mark.parametrize("key", ["two words", "line\nbreak", " "])
async def test_a_key_no_header_can_carry_is_credential_invalid(tmp_path: Path, key: str) -> None:
    agent = await agent_for(tmp_path, "http://127.0.0.1:9", {"syncthing/api-key": key})
    try:
        failure = await agent.fails("syncthing.status", "CREDENTIAL_INVALID")
        assert "secret://syncthing/api-key" in failure.message
    finally:
        await agent.executors.aclose()


async def test_nothing_listening_is_unreachable(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{processes.free_port()}"
    agent = await agent_for(tmp_path, url, {"syncthing/api-key": new_api_key()})
    try:
        failure = await agent.fails("syncthing.status", "SYNCTHING_UNREACHABLE")
        assert url in failure.message
    finally:
        await agent.executors.aclose()
