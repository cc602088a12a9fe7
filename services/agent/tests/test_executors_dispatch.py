"""build_executors: every kind of the protocol has a handler; what the dispatcher refuses."""

from __future__ import annotations

from pathlib import Path

import pytest
from executors_support import ProgressLog

from botmox_agent.executors import CommandFailed, ExecutorSettings, build_executors, command_deadline
from botmox_agent.executors._deadline import ANSWER_MARGIN_S, remaining_seconds
from botmox_agent.vault import SecretNotFound, SecretRef, SecretValue, VaultCorrupted
from botmox_protocol import COMMAND_KINDS
from botmox_protocol.kinds import FolderParams, NoParams, ProxmoxParams
from botmox_protocol.limits import MAX_MESSAGE_CHARS


def no_secrets(ref: SecretRef) -> SecretValue:
    raise SecretNotFound(f"no secret {ref.name!r}")


async def test_every_kind_of_the_registry_has_a_handler() -> None:
    # A kind added to botmox_protocol without an executor fails here.
    executors = build_executors(ExecutorSettings(), no_secrets)
    try:
        assert executors.kinds() == COMMAND_KINDS.names()
    finally:
        await executors.aclose()


async def test_without_a_syncthing_url_the_syncthing_kinds_are_not_offered() -> None:
    executors = build_executors(ExecutorSettings(syncthing_url=None), no_secrets)
    try:
        assert executors.kinds() == {kind for kind in COMMAND_KINDS.names() if kind.startswith("proxmox.")}
        with pytest.raises(CommandFailed) as failure:
            await executors.run("syncthing.status", NoParams(), ProgressLog())
        assert failure.value.code == "UNSUPPORTED_KIND"
    finally:
        await executors.aclose()


async def test_params_of_another_kind_are_a_programming_error() -> None:
    executors = build_executors(ExecutorSettings(), no_secrets)
    try:
        with pytest.raises(TypeError, match="ProxmoxParams"):
            await executors.run("proxmox.nodes.list", NoParams(), ProgressLog())
    finally:
        await executors.aclose()


async def test_a_missing_vault_entry_is_secret_not_found() -> None:
    executors = build_executors(ExecutorSettings(), no_secrets)
    try:
        with pytest.raises(CommandFailed) as failure:
            await executors.run(
                "proxmox.nodes.list", ProxmoxParams(credential="secret://proxmox/pve9"), ProgressLog()
            )
        assert failure.value.code == "SECRET_NOT_FOUND"
        assert "secret://proxmox/pve9" in failure.value.message
    finally:
        await executors.aclose()


@pytest.mark.parametrize(
    "settings",
    [
        {"request_timeout": 0},
        {"proxmox_task_timeout": -1},
        {"proxmox_poll_interval": -0.1},
        {"syncthing_url": "127.0.0.1:8384"},
    ],
)
def test_settings_are_checked(settings: dict[str, object]) -> None:
    with pytest.raises(ValueError, match="must"):
        ExecutorSettings(**settings)  # type: ignore[arg-type]


def test_settings_defaults_follow_the_seams() -> None:
    settings = ExecutorSettings()
    assert settings.syncthing_url == "http://127.0.0.1:8384"
    assert str(settings.syncthing_api_key) == "secret://syncthing/api-key"
    assert settings.ca_file is None or isinstance(settings.ca_file, Path)


def test_the_command_deadline_bounds_waits_short_of_the_limit() -> None:
    assert remaining_seconds(30.0) == 30.0
    with command_deadline(10.0):
        assert 10.0 - ANSWER_MARGIN_S - 1 < remaining_seconds(30.0) <= 10.0 - ANSWER_MARGIN_S
        assert remaining_seconds(5.0) == 5.0
        with command_deadline(0.5):
            assert remaining_seconds(30.0) == 0
        assert remaining_seconds(30.0) > 5.0
    assert remaining_seconds(30.0) == 30.0


def corrupted_vault(ref: SecretRef) -> SecretValue:
    raise VaultCorrupted("the vault is corrupted: " + "x" * 2000)


async def test_a_long_failure_message_is_cut_to_the_protocols_limit() -> None:
    folder = "f" * 255
    executors = build_executors(ExecutorSettings(syncthing_url="http://127.0.0.1:9"), corrupted_vault)
    try:
        with pytest.raises(CommandFailed) as failure:
            await executors.run("syncthing.folder.rescan", FolderParams(folder_id=folder), ProgressLog())
    finally:
        await executors.aclose()
    assert failure.value.code == "VAULT_ERROR"
    assert len(failure.value.message) == MAX_MESSAGE_CHARS
    assert failure.value.message.endswith("...")
