"""The command kinds of version 1 and their params: SyncThing and Proxmox VE, validation only.

Params carry names, never secrets: a Proxmox kind says which host by the vault entry that holds its URL
and API token (`secret://proxmox/pve1`), and the agent resolves it locally. SyncThing kinds act on the
agent's own SyncThing, configured on the agent.
"""

from __future__ import annotations

from typing import Annotated, Self

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    StrictStr,
    StringConstraints,
    model_validator,
)

from botmox_protocol.registry import CommandKind, CommandRegistry


class _Params(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


# SyncThing: device ids are eight groups of seven base32 characters; folder ids are free text.
DeviceId = Annotated[StrictStr, StringConstraints(pattern=r"^[A-Z2-7]{7}(-[A-Z2-7]{7}){7}$")]
FolderId = Annotated[StrictStr, StringConstraints(min_length=1, max_length=255, pattern=r"^[^\x00-\x1f]+$")]
FolderPath = Annotated[
    StrictStr, StringConstraints(min_length=1, max_length=4096, pattern=r"^[^\x00-\x1f]+$")
]

# Proxmox VE: node names are host names; VM ids are 100 to 999,999,999.
# A reference to a vault entry under proxmox/, by the vault's naming rule (botmox_agent.vault._names: 1 to
# 8 segments, 200 characters); the agent's tests check that the two agree.
_VAULT_NAME_SEGMENT = r"[a-z0-9][a-z0-9._-]{0,63}"
ProxmoxCredential = Annotated[
    StrictStr,
    StringConstraints(
        max_length=len("secret://") + 200, pattern=rf"^secret://proxmox(?:/{_VAULT_NAME_SEGMENT}){{1,7}}$"
    ),
]
NodeName = Annotated[StrictStr, StringConstraints(pattern=r"^[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?$")]
VmId = Annotated[StrictInt, Field(ge=100, le=999_999_999)]
VmName = Annotated[
    StrictStr,
    StringConstraints(max_length=63, pattern=r"^[A-Za-z0-9](?:[A-Za-z0-9.-]{0,61}[A-Za-z0-9])?$"),
]
PoolName = Annotated[StrictStr, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")]


class NoParams(_Params):
    """`params: {}`."""


class FolderParams(_Params):
    folder_id: FolderId
    # Rescan only this path inside the folder; the whole folder when absent.
    sub_path: FolderPath | None = None


class DeviceParams(_Params):
    device_id: DeviceId


class ProxmoxParams(_Params):
    credential: ProxmoxCredential


class ProxmoxNodeParams(ProxmoxParams):
    node: NodeName


class ProxmoxVmParams(ProxmoxNodeParams):
    vmid: VmId


class ProxmoxCloneParams(ProxmoxNodeParams):
    template_vmid: VmId
    new_vmid: VmId
    name: VmName
    # A full copy (independent disks) rather than a linked clone.
    full: StrictBool = True
    target_node: NodeName | None = None
    pool: PoolName | None = None

    @model_validator(mode="after")
    def _new_vm_is_not_the_template(self) -> Self:
        if self.new_vmid == self.template_vmid:
            raise ValueError("new_vmid must differ from template_vmid")
        return self


SYNCTHING_KINDS = (
    CommandKind("syncthing.status", NoParams, "SyncThing's system status and version", mutating=False),
    CommandKind("syncthing.folders.list", NoParams, "the configured folders and their state", mutating=False),
    CommandKind(
        "syncthing.folder.rescan", FolderParams, "rescan a folder, or a path inside it", mutating=True
    ),
    CommandKind("syncthing.device.pause", DeviceParams, "pause syncing with a device", mutating=True),
    CommandKind("syncthing.device.resume", DeviceParams, "resume syncing with a device", mutating=True),
)

PROXMOX_KINDS = (
    CommandKind("proxmox.nodes.list", ProxmoxParams, "the cluster's nodes and their state", mutating=False),
    CommandKind("proxmox.vms.list", ProxmoxNodeParams, "the VMs of a node", mutating=False),
    CommandKind("proxmox.vm.status", ProxmoxVmParams, "a VM's current status", mutating=False),
    CommandKind("proxmox.vm.start", ProxmoxVmParams, "start a VM", mutating=True),
    CommandKind(
        "proxmox.vm.stop", ProxmoxVmParams, "stop a VM at once (not a guest shutdown)", mutating=True
    ),
    CommandKind("proxmox.vm.clone", ProxmoxCloneParams, "clone a VM from a template", mutating=True),
)

COMMAND_KINDS = CommandRegistry((*SYNCTHING_KINDS, *PROXMOX_KINDS))
