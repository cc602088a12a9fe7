"""``compose.local.yaml``, rendered from the same description as the two runtimes.

Everything that differs per stack in the runtimes becomes a Compose variable here: secrets are
required variables (``${BOTMOX_JWT_SECRET:?...}``; ``python -m harness compose --secrets .env``
writes fresh ones), the backend, the API's workers and the demo token have defaults, ports are
the description's defaults. Environment entries that name host paths (``${project_root}``,
``${data_dir}``) mean nothing inside a container and are left out. Services whose state the harness
writes before each start (``ServiceSpec.state_dir``: the agent's vault and pairing code, its
SyncThing's home with the loopback rules) are left out too: Compose cannot make them; ``python -m
harness up --runtime docker`` runs them. Workspace packages an image installs are copied into its
context by hand, as the header says. The output is deterministic, so a test can tell when the
committed file is stale.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from harness.stack.components import component_of
from harness.stack.credentials import StackCredentials
from harness.stack.description import STACK, ServiceSpec, StackDescription, placeholders_in, render
from harness.stack.docker.images import LOCKED_REQUIREMENTS, export_arguments, workspace_prefix
from harness.stack.values import StackValues

COMPOSE_FILE = "compose.local.yaml"
PROJECT_NAME = "botmox-local"
_HOST_PATH_PLACEHOLDERS = frozenset({"project_root", "data_dir"})
_SECRET_VARIABLES = {
    "jwt_secret": "BOTMOX_JWT_SECRET",
    "internal_api_token": "BOTMOX_INTERNAL_API_TOKEN",
    "internal_infra_token": "BOTMOX_INTERNAL_INFRA_TOKEN",
    "db_api_password": "BOTMOX_DB_API_PASSWORD",
    "syncthing_api_key": "BOTMOX_SYNCTHING_API_KEY",
    "agent_vault_passphrase": "BOTMOX_AGENT_VAULT_PASSPHRASE",
}
# The secrets of the services Compose leaves out (the agent's vault, its SyncThing's key): not in a
# Compose secrets file.
_LEFT_OUT_SECRETS = frozenset({"syncthing_api_key", "agent_vault_passphrase"})
_SECRETS_HINT = "run: python -m harness compose --secrets .env"


def _required(variable: str) -> str:
    return f"${{{variable}:?{_SECRETS_HINT}}}"


def compose_placeholders(description: StackDescription) -> dict[str, str]:
    """The values of a Compose stack: default ports, secrets and switches as Compose variables."""
    credentials = StackCredentials(**{name: _required(var) for name, var in _SECRET_VARIABLES.items()})
    values = StackValues(
        backend="rtdb",
        ports={service.name: service.port.default for service in description.services},
        credentials=credentials,
        project_root=Path("/nonexistent"),
        data_dir=Path("/nonexistent"),
        database=description.migrations.database if description.migrations else "postgres",
    )
    filled = values.placeholders()
    filled.update(
        {
            "backend": "${DATA_BACKEND:-rtdb}",
            # Compose cannot derive it from DATA_BACKEND; set both together for the supabase mode.
            "supabase_required": "${REQUIRE_SUPABASE_READY:-false}",
            "demo_token": "${FRONTEND_DEMO_TOKEN:-}",
            "api_workers": "${API_WORKERS:-1}",
        }
    )
    return filled


def _environment(spec: ServiceSpec, filled: dict[str, str]) -> dict[str, str]:
    environment = {
        key: render(template, filled)
        for key, template in spec.environment.items()
        if not placeholders_in(template) & _HOST_PATH_PLACEHOLDERS
    }
    # Every image listens on $HOST:$PORT (see harness.stack.docker.containers).
    environment.update({"HOST": "127.0.0.1", "PORT": str(spec.port.default)})
    return dict(sorted(environment.items()))


def _quote(value: str) -> str:
    # A JSON string is a valid YAML double-quoted scalar.
    return json.dumps(value, ensure_ascii=False)


def composed_services(description: StackDescription) -> tuple[ServiceSpec, ...]:
    """The services Compose runs: those without a state the harness writes before each start."""
    return tuple(spec for spec in description.start_order() if spec.state_dir is None)


def _generated_inputs_lines(description: StackDescription) -> list[str]:
    """The files the harness generates into a build context, made by hand here (never committed)."""
    lines = []
    for spec in composed_services(description):
        if spec.image.locked_package:
            target = f"{spec.image.context}/{LOCKED_REQUIREMENTS}"
            lines.append(f"#   uv {' '.join(export_arguments(spec.image.locked_package))} -o {target}")
        for package in spec.image.workspace_packages:
            target = f"{spec.image.context}/{workspace_prefix(package)}"
            lines.append(f"#   mkdir -p {target} && cp -r {package}/pyproject.toml {package}/src {target}/")
    return lines


def _left_out_lines(description: StackDescription) -> list[str]:
    left_out = [spec.name for spec in description.start_order() if spec.state_dir is not None]
    if not left_out:
        return []
    return [
        f"# Not here: {', '.join(left_out)} (the harness writes their state before each start: a vault,",
        "# a pairing code, SyncThing's home); `python -m harness up --runtime docker` runs them.",
    ]


def render_compose(description: StackDescription = STACK) -> str:
    filled = compose_placeholders(description)
    lines = [
        "# Generated by `python -m harness compose` from harness/src/harness/stack/description.py;",
        "# do not edit. The services of `python -m harness up --runtime docker`, for `docker compose`:",
        "#   python -m harness compose --secrets .env   # fresh secrets, once (.env is read by compose)",
        *_generated_inputs_lines(description),
        "#   docker compose -f compose.local.yaml up --build -d",
        "#   psql postgresql://postgres@127.0.0.1:54322/postgres -c 'create database botmox'",
        "#   supabase migration up --db-url 'postgresql://postgres@127.0.0.1:54322/botmox?sslmode=disable'",
        "#   psql postgresql://postgres@127.0.0.1:54322/botmox \\",
        "#     -c \"alter role botmox_api password '$BOTMOX_DB_API_PASSWORD'\"",
        "# Without a registry, pass a Debian 12 base you built: BOTMOX_BASE_IMAGE=<image> (see",
        "# docs/local-development.md, Docker runtime).",
        "# DATA_BACKEND=supabase wants REQUIRE_SUPABASE_READY=true.",
        *_left_out_lines(description),
        f"name: {PROJECT_NAME}",
        "services:",
    ]
    for spec in composed_services(description):
        context = spec.image.context
        dockerfile = os.path.relpath(spec.image.dockerfile, context)
        lines += [
            f"  {spec.name}:",
            f"    image: {_quote(f'botmox-local/{spec.name}:compose')}",
            "    build:",
            f"      context: {_quote(context)}",
            f"      dockerfile: {_quote(dockerfile)}",
            "      args:",
            f"        BASE_IMAGE: {_quote('${BOTMOX_BASE_IMAGE:-' + spec.image.base_image + '}')}",
            "    network_mode: host",
            "    restart: on-failure",
        ]
        stop_signal = component_of(spec).stop_signal
        if stop_signal != "SIGTERM":  # Compose's default
            lines.append(f"    stop_signal: {_quote(stop_signal)}")
        if spec.depends_on:
            lines.append("    depends_on:")
            lines += [f"      - {dependency}" for dependency in spec.depends_on]
        lines.append("    environment:")
        lines += [f"      {key}: {_quote(value)}" for key, value in _environment(spec, filled).items()]
    return "\n".join(lines) + "\n"


def write_compose(project_root: Path, description: StackDescription = STACK) -> Path:
    target = project_root / COMPOSE_FILE
    target.write_text(render_compose(description))
    return target


def write_secrets(path: Path) -> None:
    """A Compose env file with fresh secrets (mode 0600); never overwrites one."""
    credentials = StackCredentials.generate()
    lines = [
        f"{variable}={getattr(credentials, name)}"
        for name, variable in _SECRET_VARIABLES.items()
        if name not in _LEFT_OUT_SECRETS
    ]
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        handle.write("# Secrets of the compose stack (python -m harness compose --secrets); never commit.\n")
        handle.write("\n".join(lines) + "\n")
