"""The rollout's decisions: which slot a release goes to, what the state file says, a release's
identity (archives by image id), and the inventory's release data."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import pytest
from pyinfra.api.exceptions import DeployError

from deploy.tasks.docker import archive_image_id
from deploy.tasks.release import (
    Release,
    other_slot,
    release_from,
    rollout_state,
    target_slot,
    wait_healthy_command,
)

IMAGES = {
    "api_image": "registry.example.org/botmox/api:1",
    "frontend_image": "registry.example.org/botmox/frontend:1",
}


def _docker_save_archive(path: Path, image_id: str) -> Path:
    manifest = [{"Config": f"{image_id}.json", "RepoTags": ["botmox/api:test"], "Layers": []}]
    with tarfile.open(path, "w") as tar:
        data = json.dumps(manifest).encode()
        info = tarfile.TarInfo("manifest.json")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    return path


def test_first_release_goes_to_blue_then_slots_alternate() -> None:
    first = Release(IMAGES["api_image"], IMAGES["frontend_image"], {})
    assert target_slot({}, first.identity) == "blue"
    state = {"active": "blue", "blue_release": first.identity}
    # The same release again: stay (a re-run is no change).
    assert target_slot(state, first.identity) == "blue"
    second = Release("registry.example.org/botmox/api:2", IMAGES["frontend_image"], {})
    assert target_slot(state, second.identity) == "green"
    assert other_slot("green") == "blue"
    assert other_slot(None) == "blue"


def test_rollout_state_lists_the_active_slot_and_each_slot_s_release() -> None:
    assert (
        rollout_state("green", {"blue": "aaa", "green": "bbb"})
        == "active=green\nblue_release=aaa\ngreen_release=bbb\n"
    )


def test_an_archive_s_identity_is_its_image_id(tmp_path: Path) -> None:
    one = _docker_save_archive(tmp_path / "one.tar", "a" * 64)
    two = _docker_save_archive(tmp_path / "two.tar", "b" * 64)
    assert archive_image_id(one) == "sha256:" + "a" * 64
    # Same tag, rebuilt image: another release.
    assert (
        Release("botmox/api:test", "f", {"api": str(one)}).identity
        != Release("botmox/api:test", "f", {"api": str(two)}).identity
    )


def test_a_file_that_is_not_a_docker_save_archive_is_refused(tmp_path: Path) -> None:
    bogus = tmp_path / "bogus.tar"
    bogus.write_bytes(b"not a tar")
    with pytest.raises(DeployError, match="docker save archive"):
        archive_image_id(bogus)


def test_release_data_is_checked() -> None:
    with pytest.raises(DeployError, match="app_release lacks frontend_image"):
        release_from({"app_release": {"api_image": "x"}})
    with pytest.raises(DeployError, match="unknown component"):
        release_from({"app_release": IMAGES, "app_image_archives": {"db": "/x.tar"}})
    assert release_from({"app_release": IMAGES}).api_image == IMAGES["api_image"]


def test_the_health_gate_waits_for_the_slot_s_api_and_frontend() -> None:
    command = wait_healthy_command("green", timeout_s=45)
    assert command.endswith("http://127.0.0.1:8102/api/v1/health/ready http://127.0.0.1:8202/")
    assert "--project botmox-app-green" in command
    assert "--timeout 45" in command
    # A release that fails its checks is stopped, not left restarting beside the one serving.
    assert "--stop-unit botmox-compose@app-green.service" in command
