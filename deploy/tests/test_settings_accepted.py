"""What the deploy renders is accepted by the programs that read it: the API's environment (the env file
plus the slot's compose ``environment`` with the host's generated secrets substituted) passes the API's
production start-up rules, and the agent's env file its settings."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from botmox_agent.runtime._settings import AgentSettings
from botmox_api.config import ApiSettings
from deploy.tasks import layout
from deploy.tasks.agent_host import agent_context
from deploy.tasks.release import Release, api_env_context, slot_context
from deploy.tasks.secrets import CONTROL_PLANE_JWTS, CONTROL_PLANE_RANDOM
from deploy.tasks.templating import render
from deploy.tests.secrets_tool import load_secrets_tool

SITE: dict[str, Any] = {
    "domain": "botmox.example.org",
    "data_backend": "supabase",
    "api_workers": 4,
    "firebase_database_url": "https://botmox-example.firebasedatabase.app",
}
tool = load_secrets_tool()
_REFERENCE = re.compile(r"\$\{([A-Z_]+)(?::\?[^}]*)?\}")


def _env_lines(text: str) -> dict[str, str]:
    return dict(line.split("=", 1) for line in text.splitlines() if line and not line.startswith("#"))


def _substitute(value: str, secrets: dict[str, str]) -> str:
    """docker-compose's ``${NAME}`` / ``${NAME:?message}`` from the --env-file."""
    return _REFERENCE.sub(lambda match: secrets[match.group(1)], value)


@pytest.fixture
def secrets(tmp_path: Path) -> dict[str, str]:
    path = tmp_path / "control-plane.env"
    tool.ensure(path, randoms=list(CONTROL_PLANE_RANDOM), jwts=dict(CONTROL_PLANE_JWTS), exports={})
    values: dict[str, str] = tool.parse_env(path.read_text())
    return values


def _api_environment(data: dict[str, Any], secrets: dict[str, str]) -> dict[str, str]:
    environment = _env_lines(render("app/api.env.j2", **api_env_context(data)))
    release = Release("registry.example.org/botmox/api:1", "registry.example.org/botmox/frontend:1", {})
    compose = yaml.safe_load(render("app/compose.yaml.j2", **slot_context(data, release, "blue")))
    for name, value in compose["services"]["api"]["environment"].items():
        environment[name] = _substitute(str(value), secrets)
    return environment


@pytest.mark.parametrize("backend", ["supabase", "rtdb"])
def test_the_api_accepts_its_deployed_environment_in_production(
    monkeypatch: pytest.MonkeyPatch, secrets: dict[str, str], backend: str
) -> None:
    environment = _api_environment({**SITE, "data_backend": backend}, secrets)
    for name in list(ApiSettings.model_fields):
        monkeypatch.delenv(name.upper(), raising=False)
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    settings = ApiSettings(_env_file=None)  # type: ignore[call-arg]
    assert settings.app_env == "production"
    assert settings.data_backend == backend
    assert settings.api_workers == 4
    assert settings.port == layout.API_PORTS["blue"]
    assert settings.host == "127.0.0.1"
    assert [str(n) for n in settings.forwarded_allow_ips] == ["127.0.0.1/32", "::1/128"]
    assert settings.secret("internal_infra_token") == secrets["INTERNAL_INFRA_TOKEN"]
    db_url = settings.secret("supabase_db_url")
    assert db_url == (
        f"postgresql://botmox_api:{secrets['BOTMOX_DB_API_PASSWORD']}@127.0.0.1:{layout.DB_PORT}/postgres?sslmode=disable"
    )


def test_the_agent_accepts_its_deployed_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    context = agent_context({"agent_server_url": "https://botmox.example.org", "agent_name": "edge-1"}, "h")
    for name in list(AgentSettings.model_fields):
        monkeypatch.delenv(f"BOTMOX_AGENT_{name.upper()}", raising=False)
    for name, value in _env_lines(render("agent/agent.env.j2", **context)).items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("BOTMOX_AGENT_VAULT_PASSPHRASE", tool.random_secret())
    settings = AgentSettings()
    assert settings.state_dir == Path(layout.AGENT_STATE_DIR)
    assert settings.vault == Path(layout.AGENT_STATE_DIR) / "vault.json"
    assert settings.key_source == "passphrase"
    assert settings.server_url == "https://botmox.example.org"
    assert settings.name == "edge-1"
    assert settings.http_address == layout.AGENT_METRICS_ADDRESS
