"""The test hosts: ``pyinfra inventories/test.py deploy/vps.py``.

Their addresses are not known in advance: the tool that starts them (deploy/tests/hosts.py) writes a JSON file
and names it in ``BOTMOX_TEST_HOSTS_FILE``:

    {"vps": [{"name": "vps-test", "ssh_hostname": "172.17.0.2", "ssh_user": "root",
              "ssh_key": "/tmp/.../id_ed25519", ...more host data}],
     "agents": [{"name": "agent-test", ...}]}

Every key but ``name`` is host data, over the test defaults below (``tls: internal``, the ``db-only``
profile unless the file says otherwise). Without the variable the inventory is empty.
"""

import json as _json
import os as _os
from pathlib import Path as _Path

_DEFAULTS = {
    "botmox_env": "test",
    "domain": "botmox.test",
    "tls": "internal",
    "data_backend": "supabase",
    "supabase_profile": "db-only",
    "api_workers": 2,
    "ssh_permit_root_login": "prohibit-password",
    "ssh_known_hosts_file": "/dev/null",
    "ssh_strict_host_key_checking": "no",
}


def _hosts(group: str) -> list[tuple[str, dict[str, object]]]:
    path = _os.environ.get("BOTMOX_TEST_HOSTS_FILE")
    if not path:
        return []
    described = _json.loads(_Path(path).read_text())
    hosts = []
    for entry in described.get(group, []):
        data = {key: value for key, value in entry.items() if key != "name"}
        if "ssh_user" in data and "_sudo" not in data:
            # Host data beats group_data/all.py, whose _sudo follows BOTMOX_SSH_USER: keep them in step.
            data["_sudo"] = data["ssh_user"] != "root"
        hosts.append((entry["name"], {**_DEFAULTS, **data}))
    return hosts


vps = _hosts("vps")
agents = _hosts("agents")
