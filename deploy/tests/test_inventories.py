"""The inventories as pyinfra's own CLI loads them, and the literal commands of the issue."""

from __future__ import annotations

import ipaddress
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
PYINFRA = Path(sys.executable).parent / "pyinfra"
DOCUMENTATION_NETWORK = ipaddress.ip_network("192.0.2.0/24")


# pyinfra's CLI package monkey-patches the process with gevent when imported: load inventories in a
# child process, exactly as ops do (`pyinfra INVENTORY debug-inventory`), and read each host's groups
# and data back from what it prints.
_HOST_BLOCK = re.compile(
    r"^\[(?P<name>[^\]]+)\]\s*\n--> Groups: (?P<groups>[^\n]*)\n--> Data:\n(?P<data>\{.*?\n\})$", re.M | re.S
)


def make_inventory(name: str, env: dict[str, str] | None = None) -> dict[str, dict[str, Any]]:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("BOTMOX_")}
    result = subprocess.run(
        [str(PYINFRA), name, "debug-inventory"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
        env={**environment, **(env or {})},
        stdin=subprocess.DEVNULL,
    )
    output = result.stdout + result.stderr
    return {
        match["name"]: {"groups": set(match["groups"].split(", ")), "data": json.loads(match["data"])}
        for match in _HOST_BLOCK.finditer(output)
    }


def _group(hosts: dict[str, dict[str, Any]], group: str) -> list[str]:
    return sorted(name for name, host in hosts.items() if group in host["groups"])


def test_prod_is_a_path_pyinfra_loads_and_links_to_prod_py() -> None:
    assert (ROOT / "inventories/prod").is_symlink()
    assert (ROOT / "inventories/prod").resolve() == (ROOT / "inventories/prod.py").resolve()
    inventory = make_inventory("inventories/prod")
    groups = {name: _group(inventory, name) for name in ("vps", "agents", "prod")}
    assert groups["vps"] == ["vps-1.example.org"]
    assert groups["agents"] == ["agent-1.example.org"]
    assert groups["prod"] == ["agent-1.example.org", "vps-1.example.org"]


@pytest.mark.parametrize("name", ["inventories/prod", "inventories/staging.py"])
def test_example_data_is_obviously_example(name: str) -> None:
    inventory = make_inventory(name)
    assert inventory
    for host_name, host in inventory.items():
        assert host_name.endswith(".example.org")
        assert ipaddress.ip_address(host["data"]["ssh_hostname"]) in DOCUMENTATION_NETWORK


def test_group_data_reaches_the_hosts() -> None:
    inventory = make_inventory("inventories/prod")
    vps = inventory["vps-1.example.org"]["data"]
    agent = inventory["agent-1.example.org"]["data"]
    assert vps["backup_retention_days"] == 14  # group_data/vps.py
    assert vps["api_workers"] == 4  # host data wins
    assert vps["ssh_user"] == "ops"  # group_data/all.py
    assert vps["_sudo"] is True
    assert agent["agent_ca_file"] == ""  # group_data/agents.py
    assert "backup_retention_days" not in agent
    # Nothing secret-shaped in any host's data, and no helper leaking out of a group data file.
    for host in inventory.values():
        assert not [
            k for k in host["data"] if "password" in k or "secret" in k or "token" in k or k == "_keys_file"
        ]


def test_test_inventory_reads_the_hosts_file(tmp_path: Path) -> None:
    hosts = tmp_path / "hosts.json"
    hosts.write_text(
        json.dumps(
            {
                "vps": [{"name": "vps-test", "ssh_hostname": "172.17.0.2", "ssh_user": "root"}],
                "agents": [
                    {
                        "name": "agent-test",
                        "ssh_hostname": "172.17.0.3",
                        "agent_server_url": "https://botmox.test",
                    }
                ],
            }
        )
    )
    inventory = make_inventory("inventories/test.py", {"BOTMOX_TEST_HOSTS_FILE": str(hosts)})
    vps = inventory["vps-test"]["data"]
    assert vps["tls"] == "internal"
    assert vps["supabase_profile"] == "db-only"
    assert vps["ssh_hostname"] == "172.17.0.2"
    assert vps["ssh_user"] == "root"
    assert vps["_sudo"] is False
    assert _group(inventory, "agents") == ["agent-test"]


def test_test_inventory_is_empty_without_the_hosts_file() -> None:
    assert make_inventory("inventories/test.py") == {}


def _offline(command: list[str]) -> subprocess.CompletedProcess[str]:
    """Run ``command`` in a network namespace of its own (loopback only): the example hosts'
    documentation addresses are unreachable and no packet leaves this machine."""
    environment = {k: v for k, v in os.environ.items() if not k.startswith("BOTMOX_")}
    return subprocess.run(
        ["unshare", "--net", *command],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
        env=environment,
        stdin=subprocess.DEVNULL,
    )


def _can_unshare() -> bool:
    if shutil.which("unshare") is None:
        return False
    return subprocess.run(["unshare", "--net", "true"], capture_output=True, check=False).returncode == 0


@pytest.mark.skipif(not _can_unshare(), reason="needs `unshare --net` (root)")
@pytest.mark.parametrize("deploy_file", ["deploy/vps.py", "deploy/agent.py"])
def test_the_literal_dry_run_loads_and_fails_fast_on_unreachable_example_hosts(deploy_file: str) -> None:
    # The literal command of the issue. With the example data the hosts cannot be reached, so pyinfra
    # (which gathers facts over SSH even with --dry) stops before planning: nothing is touched.
    result = _offline([str(PYINFRA), "inventories/prod", deploy_file, "--dry"])
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert "--> Loading inventory..." in output
    assert "Could not connect" in output
    assert "No hosts remaining" in output
    assert "Detected changes" not in output


@pytest.mark.skipif(not _can_unshare(), reason="needs `unshare --net` (root)")
def test_the_literal_inventory_prints_its_hosts() -> None:
    result = _offline([str(PYINFRA), "inventories/prod", "debug-inventory"])
    assert result.returncode == 0, result.stderr
    output = result.stdout + result.stderr
    assert "[vps-1.example.org]" in output
    assert "Groups: vps, prod" in output
