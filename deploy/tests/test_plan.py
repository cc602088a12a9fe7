"""``pyinfra ... --dry`` plans whole deploys against simulated fresh hosts (no host, no network).

pyinfra gathers facts over its connector even with ``--dry``; the ``@freshhost`` connector
(deploy/tests/fresh_host) answers every fact as a newly installed Debian would, uploads nothing and
runs nothing. So these tests run the deploy files for real up to the plan: every task, template,
fact and decision of a first deploy, printed as pyinfra's "Detected changes".
"""

from __future__ import annotations

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
FRESH_HOST = Path(__file__).parent / "fresh_host"
RELEASE = {"api_image": "botmox/api:test", "frontend_image": "botmox/frontend:test"}
# Every migration of the repository is applied on a fresh host.
APPLY_MIGRATIONS = f"Apply {len(list((ROOT / 'supabase/migrations').glob('*.sql')))} migration(s)"
OPS_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIExampleKeyForThePlanTestsOnly000000000000 ops@example.org"


def _uv_available() -> bool:
    return bool(os.environ.get("UV") or (ROOT / ".tools/bin/uv").exists() or shutil.which("uv"))


def _plan(
    tmp_path: Path, deploy_file: str, hosts: dict[str, Any], **env: str
) -> subprocess.CompletedProcess[str]:
    hosts_file = tmp_path / "hosts.json"
    hosts_file.write_text(json.dumps(hosts))
    keys = tmp_path / "ops.keys"
    keys.write_text(OPS_KEY + "\n")
    env = {"BOTMOX_OPS_AUTHORIZED_KEYS_FILE": str(keys), **env}
    cli = tmp_path / "supabase"
    cli.write_text("placeholder: a plan uploads nothing\n")
    environment = {k: v for k, v in os.environ.items() if not k.startswith("BOTMOX_")}
    environment.update(
        {
            "PYTHONPATH": str(FRESH_HOST),
            "BOTMOX_TEST_HOSTS_FILE": str(hosts_file),
            "BOTMOX_SUPABASE_CLI_BINARY": str(cli),
            "COLUMNS": "400",
            **env,
        }
    )
    return subprocess.run(
        [str(PYINFRA), "inventories/test.py", deploy_file, "--dry"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
        env=environment,
        stdin=subprocess.DEVNULL,
    )


def _operations(output: str) -> list[str]:
    """The plan's operation names, in order ("Deploy | ... | Operation")."""
    return [m.group(1).strip() for m in re.finditer(r"^    ((?:[^|\n]+\| )+[^\n]*?)\s{2,}", output, re.M)]


def _vps(**data: Any) -> dict[str, Any]:
    site = {"app_release": RELEASE, "firebase_database_url": "https://botmox-test.firebasedatabase.app"}
    return {"vps": [{"name": "@freshhost/vps-1", **site, **data}]}


def test_first_vps_deploy_plans_every_area_in_order(tmp_path: Path) -> None:
    result = _plan(tmp_path, "deploy/vps.py", _vps())
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "--> Detected changes:" in output
    operations = _operations(output)

    def index(fragment: str) -> int:
        found = [i for i, name in enumerate(operations) if fragment in name]
        assert found, f"{fragment!r} not planned; planned: {operations}"
        return found[0]

    order = [
        "Base system | The nftables firewall",
        "Docker and docker-compose | Install docker.io",
        "Generate the missing secrets in /etc/botmox/secrets/control-plane.env",
        "Supabase | Supabase: compose.yaml",
        f"Database migrations | {APPLY_MIGRATIONS}",
        "Set botmox_api's password",
        "Application release | Slot blue: compose.yaml",
        "Health gate: slot blue must be ready before it takes traffic",
        "Reverse proxy | Caddyfile: the site, both release slots behind health checks",
        "Record the rollout | Record slot blue as active",
        "Backups | botmox-backup.timer",
        "Observability | /etc/prometheus/prometheus.yml",
    ]
    positions = [index(fragment) for fragment in order]
    assert positions == sorted(positions)
    # db-only (the test inventory's default): the platform baseline, no Kong.
    assert index("Supabase's platform baseline (db-only)") < index(APPLY_MIGRATIONS)
    assert not [name for name in operations if "kong.yml" in name]


def test_full_profile_plans_supabase_s_gateway_files(tmp_path: Path) -> None:
    result = _plan(tmp_path, "deploy/vps.py", _vps(supabase_profile="full"))
    assert result.returncode == 0, result.stderr
    operations = _operations(result.stdout + result.stderr)
    assert any("Supabase: volumes/api/kong.yml" in name for name in operations)
    assert not any("platform baseline" in name for name in operations)


def test_a_missing_release_stops_the_plan_with_the_reason(tmp_path: Path) -> None:
    result = _plan(tmp_path, "deploy/vps.py", {"vps": [{"name": "@freshhost/vps-1"}]})
    assert result.returncode != 0
    assert "app_release lacks api_image, frontend_image" in result.stdout + result.stderr


def test_root_login_off_without_ops_keys_is_refused(tmp_path: Path) -> None:
    no_keys = tmp_path / "no.keys"
    no_keys.write_text("# nobody\n")
    hosts = _vps(ssh_permit_root_login="no")
    result = _plan(tmp_path, "deploy/vps.py", hosts, BOTMOX_OPS_AUTHORIZED_KEYS_FILE=str(no_keys))
    assert result.returncode != 0
    assert "ops_authorized_keys is empty and ssh_permit_root_login is 'no'" in result.stdout + result.stderr


AGENTS = {"agents": [{"name": "@freshhost/agent-1", "agent_server_url": "https://botmox.test"}]}


@pytest.mark.skipif(not _uv_available(), reason="uv builds the agent's wheels")
def test_first_agent_deploy_plans_install_config_and_pairing(tmp_path: Path) -> None:
    result = _plan(tmp_path, "deploy/agent.py", AGENTS, BOTMOX_AGENT_PAIRING_CODE="example-one-time-code")
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    operations = _operations(output)
    pair = next(
        i for i, name in enumerate(operations) if "Pair with the control plane (first deploy only)" in name
    )
    run = next(i for i, name in enumerate(operations) if name.endswith("Run the agent"))
    assert pair < run
    assert any("Upload botmox_agent-" in name for name in operations)
    assert "example-one-time-code" not in output


@pytest.mark.skipif(not _uv_available(), reason="uv builds the agent's wheels")
def test_an_unpaired_agent_without_a_code_is_refused(tmp_path: Path) -> None:
    result = _plan(tmp_path, "deploy/agent.py", AGENTS)
    assert result.returncode != 0
    assert "is not paired: set BOTMOX_AGENT_PAIRING_CODE" in result.stdout + result.stderr


def test_rollback_without_a_previous_release_is_refused(tmp_path: Path) -> None:
    result = _plan(tmp_path, "deploy/rollback.py", _vps())
    assert result.returncode != 0
    assert "no previous release to roll back to" in result.stdout + result.stderr
