"""The rendered files, checked without a host: compose files, Caddyfile, units, firewall, sshd."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from pyinfra.api.exceptions import DeployError

from deploy.tasks import layout
from deploy.tasks.agent_host import agent_context
from deploy.tasks.backups import backup_context
from deploy.tasks.base import ALLOWED_TCP_PORTS, base_context
from deploy.tasks.docker import compose_unit_context, daemon_config
from deploy.tasks.observability import observability_context
from deploy.tasks.proxy import SECURITY_HEADERS, proxy_context
from deploy.tasks.release import Release, api_env_context, slot_context
from deploy.tasks.supabase import supabase_context, supabase_files
from deploy.tasks.templating import render

SITE: dict[str, Any] = {
    "domain": "botmox.example.org",
    "firebase_database_url": "https://botmox-example.firebasedatabase.app",
    "tls": "acme",
    "acme_email": "ops@example.org",
    "data_backend": "supabase",
    "supabase_profile": "full",
}
RELEASE = Release("registry.example.org/botmox/api:1", "registry.example.org/botmox/frontend:1", {})


def _compose(profile: str) -> dict[str, Any]:
    text = render("supabase/compose.yaml.j2", **supabase_context({**SITE, "supabase_profile": profile}))
    loaded = yaml.safe_load(text)
    assert isinstance(loaded, dict)
    return loaded


def _published_ports(compose: dict[str, Any]) -> list[str]:
    return [port for service in compose["services"].values() for port in service.get("ports", [])]


def test_full_supabase_compose_has_every_service_and_publishes_on_loopback_only() -> None:
    compose = _compose("full")
    assert set(compose["services"]) == {"db", "auth", "rest", "kong", "storage", "meta", "studio"}
    # docker-compose 1.29 refuses a top-level name: the unit passes -p.
    assert "name" not in compose
    assert _published_ports(compose) == [
        f"127.0.0.1:{layout.DB_PORT}:5432",
        f"127.0.0.1:{layout.GATEWAY_PORT}:8000",
        f"127.0.0.1:{layout.STUDIO_PORT}:3000",
    ]


def test_db_only_compose_is_postgres_alone() -> None:
    compose = _compose("db-only")
    assert set(compose["services"]) == {"db"}
    assert compose["services"]["db"]["image"] == "postgres:15-bookworm"
    assert compose["volumes"] == {"db-data": None}
    assert supabase_files("db-only") == {"supabase/compose.yaml.j2": "compose.yaml"}


@pytest.mark.parametrize("profile", ["full", "db-only"])
def test_compose_files_hold_no_secret_value_only_references(profile: str) -> None:
    text = render("supabase/compose.yaml.j2", **supabase_context({**SITE, "supabase_profile": profile}))
    for name in ("POSTGRES_PASSWORD", "JWT_SECRET") if profile == "full" else ("POSTGRES_PASSWORD",):
        assert f"${{{name}" in text
    assert not re.search(r"PASSWORD: \"?[A-Za-z0-9]", text)


def test_kong_config_is_valid_yaml_without_double_quotes() -> None:
    text = render("supabase/kong.yml")
    # The container substitutes the keys with a shell echo inside double quotes.
    assert '"' not in text
    config = yaml.safe_load(text)
    paths = {p for service in config["services"] for route in service["routes"] for p in route["paths"]}
    assert {"/auth/v1/", "/rest/v1/", "/storage/v1/"} <= paths


def test_app_slot_compose_runs_api_and_frontend_on_the_slot_ports() -> None:
    text = render("app/compose.yaml.j2", **slot_context(SITE, RELEASE, "green"))
    compose = yaml.safe_load(text)
    assert "name" not in compose
    api, frontend = compose["services"]["api"], compose["services"]["frontend"]
    assert api["environment"]["PORT"] == str(layout.API_PORTS["green"])
    assert frontend["environment"]["PORT"] == str(layout.FRONTEND_PORTS["green"])
    assert api["env_file"] == ["/etc/botmox/api.env"]
    assert "${BOTMOX_DB_API_PASSWORD:?" in api["environment"]["SUPABASE_DB_URL"]


def test_api_env_takes_the_backend_from_the_inventory_and_trusts_loopback_only() -> None:
    env = render("app/api.env.j2", **api_env_context({**SITE, "data_backend": "rtdb", "api_workers": 3}))
    lines = dict(line.split("=", 1) for line in env.splitlines() if line and not line.startswith("#"))
    assert lines["DATA_BACKEND"] == "rtdb"
    assert lines["API_WORKERS"] == "3"
    assert lines["APP_ENV"] == "production"
    assert lines["FORWARDED_ALLOW_IPS"] == "127.0.0.1/32,::1/128"
    assert lines["CORS_ORIGINS"] == "https://botmox.example.org"
    assert lines["FIREBASE_DATABASE_URL"] == "https://botmox-example.firebasedatabase.app"
    assert lines["REQUIRE_RTDB_READY"] == "true"
    assert "FIREBASE_DATABASE_EMULATOR_HOST" not in lines


def test_the_rtdb_settings_are_required_and_the_emulator_is_refused_in_production() -> None:
    without_url = {key: value for key, value in SITE.items() if key != "firebase_database_url"}
    with pytest.raises(DeployError, match="firebase_database_url is not set"):
        api_env_context(without_url)
    with pytest.raises(DeployError, match="firebase_emulator_host is for test hosts"):
        api_env_context({**SITE, "firebase_emulator_host": "172.17.0.4:9000"})
    with pytest.raises(DeployError, match="api_app_env must be one of"):
        api_env_context({**SITE, "api_app_env": "staging"})


def test_the_service_account_is_mounted_read_only_and_named_to_the_api() -> None:
    data = {**SITE, "firebase_credentials_file": "/home/ops/botmox-firebase.json"}
    env = render("app/api.env.j2", **api_env_context(data))
    assert f"GOOGLE_APPLICATION_CREDENTIALS={layout.FIREBASE_CREDENTIALS_IN_CONTAINER}" in env.splitlines()
    release = Release("registry.example.org/botmox/api:1", "registry.example.org/botmox/frontend:1", {})
    compose = yaml.safe_load(render("app/compose.yaml.j2", **slot_context(data, release, "blue")))
    mount = f"{layout.FIREBASE_CREDENTIALS_FILE}:{layout.FIREBASE_CREDENTIALS_IN_CONTAINER}:ro"
    assert compose["services"]["api"]["volumes"] == [mount]
    plain = yaml.safe_load(render("app/compose.yaml.j2", **slot_context(SITE, release, "blue")))
    assert "volumes" not in plain["services"]["api"]


def _caddyfile(**overrides: Any) -> str:
    return render("caddy/Caddyfile.j2", **proxy_context({**SITE, **overrides}))


def test_caddyfile_routes() -> None:
    text = _caddyfile()
    # Both release slots, whichever is healthy: a rollout never rewrites (reloads) the Caddyfile.
    api = " ".join(f"127.0.0.1:{layout.API_PORTS[slot]}" for slot in layout.SLOTS)
    frontend = " ".join(f"127.0.0.1:{layout.FRONTEND_PORTS[slot]}" for slot in layout.SLOTS)
    assert re.search(r"handle /api/v1/agents/ws \{\s*reverse_proxy " + re.escape(api) + " ", text)
    assert re.search(r"handle /api/\* \{\s*reverse_proxy " + re.escape(api) + " ", text)
    assert "@gateway path /rest/* /auth/* /storage/*" in text
    assert f"reverse_proxy 127.0.0.1:{layout.GATEWAY_PORT}" in text
    assert f"reverse_proxy {frontend} " in text
    assert text.count("health_uri /api/v1/health/live") == 2
    assert text.count("health_uri /runtime-config.js") == 1
    assert text.count("keepalive off") == 3
    assert text.count("lb_try_duration") == 3
    assert text.count("header_up X-Forwarded-For {remote_host}") == 3
    for name, value in SECURITY_HEADERS.items():
        assert f'{name} "{value}"' in text
    assert "tls internal" not in text
    assert "email ops@example.org" in text


def test_caddyfile_for_tests_uses_the_internal_ca_and_db_only_has_no_gateway() -> None:
    text = _caddyfile(tls="internal", supabase_profile="db-only")
    assert "tls internal" in text
    assert "email" not in text
    assert f"127.0.0.1:{layout.GATEWAY_PORT}" not in text


@pytest.mark.skipif(shutil.which("caddy") is None, reason="caddy is not installed")
@pytest.mark.parametrize("tls", ["acme", "internal"])
def test_caddyfile_is_accepted_by_caddy(tmp_path: Path, tls: str) -> None:
    caddyfile = tmp_path / "Caddyfile"
    caddyfile.write_text(_caddyfile(tls=tls))
    result = subprocess.run(
        ["caddy", "adapt", "--adapter", "caddyfile", "--config", str(caddyfile)],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr


def _unit_keys(text: str) -> dict[str, list[str]]:
    keys: dict[str, list[str]] = {}
    for line in text.splitlines():
        if "=" in line and not line.startswith("#"):
            name, value = line.split("=", 1)
            keys.setdefault(name, []).append(value)
    return keys


def test_agent_unit_is_hardened() -> None:
    context = agent_context({"agent_server_url": "https://botmox.example.org"}, "agent-1")
    keys = _unit_keys(render("agent/botmox-agent.service.j2", **context))
    assert keys["NoNewPrivileges"] == ["yes"]
    assert keys["ProtectSystem"] == ["strict"]
    assert keys["ReadWritePaths"] == [layout.AGENT_STATE_DIR]
    assert keys["ProtectHome"] == ["yes"]
    assert keys["CapabilityBoundingSet"] == [""]
    assert keys["User"] == [layout.AGENT_USER]
    assert keys["ExecStart"] == [f"{layout.AGENT_VENV}/bin/botmox-agent run"]
    assert keys["EnvironmentFile"] == [layout.AGENT_ENV_FILE, layout.AGENT_SECRETS_FILE]


def test_agent_env_points_the_agent_at_its_state_directory() -> None:
    context = agent_context({"agent_server_url": "https://botmox.example.org", "agent_name": "edge-1"}, "x")
    env = render("agent/agent.env.j2", **context)
    assert f"BOTMOX_AGENT_STATE_DIR={layout.AGENT_STATE_DIR}\n" in env
    assert "BOTMOX_AGENT_KEY_SOURCE=passphrase\n" in env
    assert "BOTMOX_AGENT_NAME=edge-1\n" in env
    assert "PASSPHRASE" not in env
    assert "CA_FILE" not in env


def test_compose_unit_names_the_project_with_p() -> None:
    keys = _unit_keys(render("systemd/botmox-compose@.service.j2", **compose_unit_context()))
    assert keys["ExecStart"] == [
        f"/usr/bin/docker-compose -p botmox-%i --env-file {layout.SECRETS_FILE} -f compose.yaml "
        "up -d --remove-orphans"
    ]
    assert keys["WorkingDirectory"] == [f"{layout.COMPOSE_ROOT}/%i"]
    assert keys["Requires"] == ["docker.service"]


def test_backup_units() -> None:
    context = backup_context({})
    service = _unit_keys(render("systemd/botmox-backup.service.j2", **context))
    assert service["ExecStart"] == ["/usr/local/sbin/botmox-backup"]
    assert service["ProtectSystem"] == ["strict"]
    timer = _unit_keys(render("systemd/botmox-backup.timer.j2", **context))
    assert timer["Persistent"] == ["true"]
    env = render("backups/backup.env.j2", **context)
    assert 'SCHEMAS="public botmox supabase_migrations"' in env


def test_firewall_lets_in_22_80_443_only() -> None:
    text = render("base/nftables.conf.j2", **base_context({"ops_user": "ops"}))
    assert ALLOWED_TCP_PORTS == (22, 80, 443)
    assert "policy drop;" in text
    accepted = re.findall(r"^[ \t]*(?:tcp|udp) dport .*accept$", text, re.MULTILINE)
    assert accepted == ["\t\ttcp dport { 22, 80, 443 } ct state new accept"]
    # Never flush the whole ruleset: Docker's rules live there too.
    assert not re.search(r"^flush ruleset", text, re.MULTILINE)


def test_sshd_hardening() -> None:
    text = render("base/sshd-botmox.conf.j2", **base_context({"ops_user": "ops"}))
    assert "PasswordAuthentication no\n" in text
    assert "PermitRootLogin no\n" in text
    assert "AllowUsers ops\n" in text
    permitted = render(
        "base/sshd-botmox.conf.j2",
        **base_context({"ops_user": "ops", "ssh_permit_root_login": "prohibit-password"}),
    )
    assert "AllowUsers ops root\n" in permitted


def test_docker_daemon_config() -> None:
    assert '"live-restore": true' in daemon_config({})
    assert '"storage-driver": "vfs"' in daemon_config({"docker_storage_driver": "vfs"})


def test_prometheus_config_and_rules_are_valid_yaml() -> None:
    context = observability_context({"agent_metrics_targets": ["10.0.0.5:9465"]}, "green")
    config = yaml.safe_load(render("prometheus/prometheus.yml.j2", **context))
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    assert jobs["botmox-api"]["static_configs"][0]["targets"] == [f"127.0.0.1:{layout.API_PORTS['green']}"]
    assert jobs["botmox-api"]["authorization"]["credentials_file"].startswith("/run/botmox-prometheus/")
    assert jobs["botmox-agent"]["static_configs"][0]["targets"] == ["10.0.0.5:9465"]
    rules = yaml.safe_load(render("prometheus/botmox-rules.yml.j2", **context))
    names = {rule["alert"] for group in rules["groups"] for rule in group["rules"]}
    assert {"BotmoxApiNotReady", "BotmoxApi5xxRate", "BotmoxBackupTooOld"} <= names
