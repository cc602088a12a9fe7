"""Data of every host (inventory files and host data override it). Variables: inventories/README.md."""

import os as _os
from pathlib import Path as _Path

__all__ = [
    "_sudo",
    "ops_authorized_keys",
    "ops_user",
    "ssh_permit_root_login",
    "ssh_user",
    "unattended_reboot",
]

# Ops log in as the ops user (made by deploy/tasks/base.py) and use sudo; the very first deploy of a
# fresh server runs as root: BOTMOX_SSH_USER=root (root needs no sudo).
ssh_user = _os.environ.get("BOTMOX_SSH_USER", "ops")
_sudo = ssh_user != "root"
ops_user = "ops"
# Public keys of the people who may log in as the ops user: a file outside the repository, one key a
# line (BOTMOX_OPS_AUTHORIZED_KEYS_FILE), so the inventory names no person.
_keys_file = _os.environ.get("BOTMOX_OPS_AUTHORIZED_KEYS_FILE")
_key_lines = _Path(_keys_file).read_text().splitlines() if _keys_file else []
ops_authorized_keys = [line.strip() for line in _key_lines if line.strip() and not line.startswith("#")]
ssh_permit_root_login = "no"
unattended_reboot = False
