"""The command kinds' allowlist: the registry mechanism and the params of each declared kind."""

from __future__ import annotations

import json
from typing import Any

import pytest
from pydantic import BaseModel

from botmox_protocol import (
    COMMAND_KINDS,
    CommandKind,
    CommandRegistry,
    ErrorCode,
    InvalidParams,
    ProtocolError,
    UnknownCommandKind,
    parse_frame,
)
from botmox_protocol.kinds import NoParams

DEVICE = "MFZWI3D-BONSGYC-YLTMRWG-C43ENR5-QXGZDMM-FZWI3DP-BONSGYY-LTMRWAD"
PVE = {"credential": "secret://proxmox/pve1", "node": "pve1"}

VALID: dict[str, list[dict[str, Any]]] = {
    "syncthing.status": [{}],
    "syncthing.folders.list": [{}],
    "syncthing.folder.rescan": [{"folder_id": "default"}, {"folder_id": "photos", "sub_path": "2026/12"}],
    "syncthing.device.pause": [{"device_id": DEVICE}],
    "syncthing.device.resume": [{"device_id": DEVICE}],
    "proxmox.nodes.list": [{"credential": "secret://proxmox/pve1"}],
    "proxmox.vms.list": [PVE],
    "proxmox.vm.status": [PVE | {"vmid": 100}],
    "proxmox.vm.start": [PVE | {"vmid": 999_999_999}],
    "proxmox.vm.stop": [PVE | {"vmid": 101}],
    "proxmox.vm.clone": [
        PVE | {"template_vmid": 9000, "new_vmid": 123, "name": "bot-01"},
        PVE | {"template_vmid": 9000, "new_vmid": 124, "name": "bot-02", "full": False,
               "target_node": "pve2", "pool": "bots"},
    ],
}  # fmt: skip

INVALID: dict[str, list[dict[str, Any]]] = {
    "syncthing.status": [{"x": 1}],
    "syncthing.folders.list": [{"folder_id": "default"}],
    "syncthing.folder.rescan": [{}, {"folder_id": ""}, {"folder_id": "a\nb"}, {"folder_id": 7}],
    "syncthing.device.pause": [{"device_id": "not-a-device"}, {"device_id": DEVICE.lower()}, {}],
    "syncthing.device.resume": [{"device_id": DEVICE[:-1]}],
    "proxmox.nodes.list": [{}, {"credential": "pve-token-value"}, {"credential": "secret://syncthing/api"}],
    "proxmox.vms.list": [{"credential": "secret://proxmox/pve1"}, PVE | {"node": "-pve"}],
    "proxmox.vm.status": [PVE, PVE | {"vmid": 99}, PVE | {"vmid": 1_000_000_000}, PVE | {"vmid": "101"},
                          PVE | {"vmid": 101.0}, PVE | {"vmid": True}],
    "proxmox.vm.start": [PVE | {"vmid": 101, "force": True}],
    "proxmox.vm.stop": [{"credential": "secret://proxmox/pve1", "vmid": 101}],
    "proxmox.vm.clone": [
        PVE | {"template_vmid": 9000, "new_vmid": 9000, "name": "bot-01"},
        PVE | {"template_vmid": 9000, "new_vmid": 123, "name": "bot 01"},
        PVE | {"template_vmid": 9000, "new_vmid": 123, "name": "bot-01", "full": "yes"},
        PVE | {"template_vmid": 9000, "new_vmid": 123},
    ],
}  # fmt: skip


def test_the_examples_cover_every_declared_kind() -> None:
    assert set(VALID) == set(INVALID) == COMMAND_KINDS.names()
    assert {kind.name.split(".")[0] for kind in COMMAND_KINDS} == {"syncthing", "proxmox"}


@pytest.mark.parametrize(("kind", "params"), [(k, p) for k, ps in VALID.items() for p in ps])
def test_valid_params_pass(kind: str, params: dict[str, Any]) -> None:
    assert isinstance(COMMAND_KINDS.validate(kind, params), COMMAND_KINDS.get(kind).params)


@pytest.mark.parametrize(("kind", "params"), [(k, p) for k, ps in INVALID.items() for p in ps])
def test_invalid_params_are_refused_in_a_command_frame(kind: str, params: dict[str, Any]) -> None:
    with pytest.raises(InvalidParams):
        COMMAND_KINDS.validate(kind, params)
    frame = {"v": 1, "type": "command", "id": "m1", "command_id": "c1", "kind": kind, "params": params,
             "deadline": "2026-12-06T08:05:00Z"}  # fmt: skip
    with pytest.raises(ProtocolError) as caught:
        parse_frame(json.dumps(frame))
    assert (caught.value.code, caught.value.ref) == (ErrorCode.INVALID_PARAMS, "m1")


def test_only_allowlisted_kinds_exist() -> None:
    with pytest.raises(UnknownCommandKind) as caught:
        COMMAND_KINDS.get("shell.exec", ref="m1")
    assert caught.value.ref == "m1"
    assert "shell.exec" not in COMMAND_KINDS


def test_mutating_kinds_are_the_ones_that_change_state() -> None:
    readers = {kind.name for kind in COMMAND_KINDS if not kind.mutating}
    assert readers == {
        "syncthing.status", "syncthing.folders.list", "proxmox.nodes.list", "proxmox.vms.list",
        "proxmox.vm.status",
    }  # fmt: skip


def test_a_registry_is_immutable_and_extended_into_a_new_one() -> None:
    extra = CommandKind("test.echo", NoParams, "echo", mutating=False)
    extended = COMMAND_KINDS.with_kinds(extra)
    assert "test.echo" in extended
    assert "test.echo" not in COMMAND_KINDS
    assert len(extended) == len(COMMAND_KINDS) + 1
    with pytest.raises(ValueError, match="declared twice"):
        extended.with_kinds(extra)
    with pytest.raises(TypeError):
        COMMAND_KINDS._kinds["x"] = extra  # type: ignore[index]


def test_parse_frame_checks_commands_against_the_registry_it_is_given() -> None:
    class EchoParams(BaseModel):
        text: str

    registry = CommandRegistry([CommandKind("test.echo", EchoParams, "echo", mutating=False)])
    frame = {"v": 1, "type": "command", "id": "m1", "command_id": "c1", "kind": "test.echo",
             "params": {"text": "hi"}, "deadline": "2026-12-06T08:05:00Z"}  # fmt: skip
    assert parse_frame(json.dumps(frame), registry=registry)
    with pytest.raises(ProtocolError) as caught:
        parse_frame(json.dumps(frame))
    assert caught.value.code is ErrorCode.UNKNOWN_COMMAND_KIND
