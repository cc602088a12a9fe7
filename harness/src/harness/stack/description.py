"""The one description of the local stack, read by every runtime (native, docker) and the compose renderer.

A service says what it is (image build inputs, command, ports, environment, health check, what it needs
first), never how a particular runtime starts it. Commands, environments and health paths are
templates with ``${...}`` placeholders (``${api.port}``, ``${secret.jwt_secret}``, ``${project_root}``...)
that a runtime fills from the values of one stack (see ``harness.stack.values``), and ``${start.NAME}``
for a value the service's component computes at each start (the agent's pairing code). Paths in
templates start from ``${project_root}`` or ``${data_dir}`` so a container can map them to its own
directories; a service's ``state_dir`` (written by the harness before it starts) is mounted at the same
path, so its paths hold in both runtimes.
"""

from __future__ import annotations

import re
import string
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from types import MappingProxyType
from typing import Literal

from harness import syncthing

ServiceName = Literal["postgres", "rtdb", "api", "frontend", "syncthing", "agent"]
HealthKind = Literal["http", "postgres"]
# "postgresql": a PostgreSQL server (initdb as a non-root user, migrations applied after it is healthy);
# "process": a program that runs in the foreground with the given command and environment. What each
# "syncthing": a SyncThing whose home (keys, config.xml with the loopback rules, the GUI's address
# and API key) the harness writes before each start; "agent": the customer agent, whose vault the
# harness seeds and whose pairing code it creates before each start. What each one means to the
# runtimes is its component class (harness.stack.components.COMPONENTS).
Engine = Literal["postgresql", "process", "syncthing", "agent"]


class DescriptionError(ValueError):
    """The description contradicts itself (duplicate names or ports, unknown or cyclic dependencies)."""


class Placeholders(string.Template):
    """``${service.key}`` placeholders: dots are part of the name; a missing value is an error."""

    idpattern = r"[a-z][a-z0-9_]*(?:\.[a-z][a-z0-9_]*)*"
    flags = re.ASCII


# ``${start.NAME}``: a value the service's component computes at each start (ServiceSpec.start_values).
START_PREFIX = "start."


def render(template: str, values: Mapping[str, str]) -> str:
    """Fill a template; raises ``KeyError`` naming the first placeholder without a value."""
    return Placeholders(template).substitute(values)


def placeholders_in(template: str) -> set[str]:
    names: set[str] = set()
    for match in Placeholders.pattern.finditer(template):
        name = match.group("named") or match.group("braced")
        if name:
            names.add(name)
    return names


@dataclass(frozen=True, slots=True)
class ImageBuild:
    """Inputs of the service's image for the docker runtime; paths relative to the project root.

    A container runs its image's own entrypoint and command with the service's environment;
    ``ServiceSpec.command`` is how the service runs from a checkout (the native runtime).
    """

    context: str
    dockerfile: str
    # The usual public base image; the docker runtime builds a Debian base itself when it cannot be pulled.
    base_image: str
    # The uv workspace package whose uv.lock pins the image installs: the harness exports them into
    # the build context (harness.stack.docker.images.LOCKED_REQUIREMENTS) at build time.
    locked_package: str | None = None
    # uv workspace packages the image installs besides its own (project-relative directories, e.g.
    # "services/protocol"): copied into the build context under workspace/<directory name>/ and
    # hashed with it (harness.stack.docker.images.WORKSPACE_DIR); the Dockerfile installs them.
    workspace_packages: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class PortSpec:
    """A TCP port the service listens on (127.0.0.1 only). ``default`` is used when free."""

    name: str
    default: int


@dataclass(frozen=True, slots=True)
class HealthCheck:
    """``http``: GET ``path`` answers ``expect_status``; ``postgres``: a superuser connection succeeds."""

    kind: HealthKind
    path: str = ""
    expect_status: int = 200
    timeout_s: float = 60.0


@dataclass(frozen=True, slots=True)
class ServiceSpec:
    name: ServiceName
    description: str
    engine: Engine
    image: ImageBuild
    command: tuple[str, ...]
    ports: tuple[PortSpec, ...]
    health: HealthCheck
    environment: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    depends_on: tuple[ServiceName, ...] = ()
    # A directory under ${data_dir} the service keeps its state in, written by the harness before it
    # starts (a vault, a config): the docker runtime mounts it at the same path and runs the container
    # as the harness's user, so the paths and file owners in it hold in both runtimes.
    state_dir: str | None = None
    # Values its component computes at each start (``${start.NAME}``, e.g. a one-time pairing code):
    # never recorded in the state file; empty where a service is rendered outside a start (status).
    start_values: tuple[str, ...] = ()

    @property
    def port(self) -> PortSpec:
        """The service's main port (the first one)."""
        return self.ports[0]

    def templates(self) -> Iterable[str]:
        yield from self.command
        yield from self.environment.values()
        yield self.health.path
        if self.state_dir is not None:
            yield self.state_dir


@dataclass(frozen=True, slots=True)
class MigrationStep:
    """Schema migrations applied with the Supabase CLI once ``service`` is healthy, before its dependants."""

    service: ServiceName
    directory: str
    database: str


@dataclass(frozen=True, slots=True)
class StackDescription:
    services: tuple[ServiceSpec, ...]
    migrations: MigrationStep | None = None

    def service(self, name: str) -> ServiceSpec:
        for service in self.services:
            if service.name == name:
                return service
        raise KeyError(f"no service named {name!r}; the stack has {', '.join(self.names())}")

    def names(self) -> tuple[str, ...]:
        return tuple(service.name for service in self.services)

    def start_order(self) -> tuple[ServiceSpec, ...]:
        """Services in an order where each comes after what it depends on (stable: description order)."""
        check(self)
        ordered: list[ServiceSpec] = []
        placed: set[str] = set()
        while len(ordered) < len(self.services):
            for service in self.services:
                if service.name not in placed and all(dep in placed for dep in service.depends_on):
                    ordered.append(service)
                    placed.add(service.name)
                    break
        return tuple(ordered)

    def stop_order(self) -> tuple[ServiceSpec, ...]:
        return tuple(reversed(self.start_order()))


def check(description: StackDescription) -> None:
    """Raise ``DescriptionError`` unless names and ports are unique and dependencies exist and are acyclic."""
    names = [service.name for service in description.services]
    duplicates = {name for name in names if names.count(name) > 1}
    if duplicates:
        raise DescriptionError(f"duplicate service names: {sorted(duplicates)}")
    ports = [port.default for service in description.services for port in service.ports]
    duplicate_ports = {port for port in ports if ports.count(port) > 1}
    if duplicate_ports:
        raise DescriptionError(f"duplicate default ports: {sorted(duplicate_ports)}")
    for service in description.services:
        if not service.ports:
            raise DescriptionError(f"{service.name} has no port")
        for dependency in service.depends_on:
            if dependency not in names:
                raise DescriptionError(f"{service.name} depends on unknown service {dependency!r}")
        packages = [PurePosixPath(package).name for package in service.image.workspace_packages]
        if len(packages) != len(set(packages)):
            raise DescriptionError(f"{service.name}: two workspace packages share a directory name")
        if service.state_dir is not None and not service.state_dir.startswith("${data_dir}/"):
            raise DescriptionError(f"{service.name}: its state directory must be under ${{data_dir}}")
        undeclared = {
            name.removeprefix(START_PREFIX)
            for template in service.templates()
            for name in placeholders_in(template)
            if name.startswith(START_PREFIX)
        } - set(service.start_values)
        if undeclared:
            raise DescriptionError(
                f"{service.name} uses start values it does not declare: {sorted(undeclared)}"
            )
    if description.migrations is not None and description.migrations.service not in names:
        raise DescriptionError(f"migrations target unknown service {description.migrations.service!r}")
    _check_acyclic(description)


# An environment variable's name as POSIX shells accept it for `export`.
_VARIABLE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def check_extra_environment(description: StackDescription, extra: Mapping[str, Mapping[str, str]]) -> None:
    """Raise ``DescriptionError`` unless every extra variable belongs to a service of the stack, has a
    valid name and is not one the description sets: those follow from the stack's values (ports,
    secrets, ``--backend``), and a second way to set them would let the state file lie."""
    for name, variables in extra.items():
        spec = description.service(name) if name in description.names() else None
        if spec is None:
            raise DescriptionError(f"extra variables for unknown service {name!r}")
        for variable in variables:
            if not _VARIABLE_NAME.match(variable):
                raise DescriptionError(f"{variable!r} is no environment variable name")
            if variable in spec.environment:
                raise DescriptionError(
                    f"{variable} of {name} is set by the stack itself (see harness.stack.description)"
                )


def _check_acyclic(description: StackDescription) -> None:
    needs = {service.name: set(service.depends_on) for service in description.services}
    placed: set[str] = set()
    for _ in range(len(needs)):
        ready = {name for name, deps in needs.items() if name not in placed and deps <= placed}
        if not ready:
            break
        placed |= ready
    if len(placed) != len(needs):
        raise DescriptionError(f"dependency cycle among {sorted(set(needs) - placed)}")


def _env(variables: dict[str, str]) -> Mapping[str, str]:
    return MappingProxyType(variables)


_PYTHON_BASE = "python:3.11-slim-bookworm"

POSTGRES = ServiceSpec(
    name="postgres",
    description="Supabase's database: PostgreSQL 15, migrated with the Supabase CLI",
    engine="postgresql",
    image=ImageBuild("harness/docker/postgres", "harness/docker/postgres/Dockerfile", "postgres:15-bookworm"),
    command=(
        "postgres",
        "-D",
        "${data_dir}/postgres",
        "-p",
        "${postgres.port}",
        "-c",
        "listen_addresses=127.0.0.1",
    ),
    # 54322 is the database port of supabase/config.toml, so tools pointed at `supabase start` work too.
    ports=(PortSpec("postgres", 54322),),
    health=HealthCheck("postgres", timeout_s=60.0),
)

RTDB = ServiceSpec(
    name="rtdb",
    description="Realtime Database emulator (the harness's own, REST protocol of firebase-admin)",
    engine="process",
    image=ImageBuild("harness/src/harness/rtdb", "harness/docker/rtdb/Dockerfile", _PYTHON_BASE),
    command=(
        "python",
        "-m",
        "harness.rtdb",
        "--host",
        "127.0.0.1",
        "--port",
        "${rtdb.port}",
        "--snapshot",
        "${data_dir}/rtdb.json",
    ),
    # 9000 is the Firebase Database Emulator's usual port.
    ports=(PortSpec("http", 9000),),
    health=HealthCheck("http", path="/.json?ns=harness-ready-probe&shallow=true", timeout_s=30.0),
)

API = ServiceSpec(
    name="api",
    description="Control-plane API v1 (FastAPI under uvicorn)",
    engine="process",
    image=ImageBuild(
        "services/api",
        "services/api/Dockerfile",
        _PYTHON_BASE,
        locked_package="botmox-api",
        workspace_packages=("services/protocol",),
    ),
    command=("python", "-m", "botmox_api"),
    ports=(PortSpec("http", 8000),),
    environment=_env(
        {
            "APP_ENV": "development",
            "DATA_BACKEND": "${backend}",
            "SUPABASE_DB_URL": "${postgres.api_url}",
            "SUPABASE_JWT_SECRET": "${secret.jwt_secret}",
            "SUPABASE_JWT_AUDIENCE": "${jwt_audience}",
            "FIREBASE_DATABASE_EMULATOR_HOST": "${rtdb.host}",
            "FIREBASE_DATABASE_URL": "${rtdb.url}",
            "DEFAULT_TENANT_ID": "${default_tenant_id}",
            "INTERNAL_API_TOKEN": "${secret.internal_api_token}",
            "INTERNAL_INFRA_TOKEN": "${secret.internal_infra_token}",
            "CORS_ORIGINS": "${frontend.url},http://localhost:${frontend.port}",
            "REQUIRE_RTDB_READY": "true",
            "REQUIRE_SUPABASE_READY": "${supabase_required}",
            "HOST": "127.0.0.1",
            "PORT": "${api.port}",
            "API_WORKERS": "${api_workers}",
            "LOG_LEVEL": "INFO",
            "LOG_FORMAT": "json",
        }
    ),
    health=HealthCheck("http", path="/api/v1/health/ready", timeout_s=60.0),
    depends_on=("postgres", "rtdb"),
)

FRONTEND = ServiceSpec(
    name="frontend",
    description="Settings page: static files and a generated /runtime-config.js",
    engine="process",
    image=ImageBuild("services/frontend", "services/frontend/Dockerfile", "debian:bookworm-slim"),
    command=("python", "-m", "harness.stack.static_server"),
    # 5173 is among the API's default CORS origins (the Bot-Mox frontend's dev server port).
    ports=(PortSpec("http", 5173),),
    # The variables of services/frontend's image (entrypoint.sh + Caddyfile); the harness's static
    # server reads the same ones.
    environment=_env(
        {
            "FRONTEND_ROOT": "${project_root}/services/frontend/public",
            "API_BASE_URL": "${api.url}",
            "FRONTEND_DEMO_TOKEN": "${demo_token}",
            "FRONTEND_BIND": "127.0.0.1",
            "FRONTEND_PORT": "${frontend.port}",
        }
    ),
    health=HealthCheck("http", path="/runtime-config.js", timeout_s=30.0),
    depends_on=("api",),
)

SYNCTHING = ServiceSpec(
    name="syncthing",
    description="The agent's SyncThing (Debian's): REST on 127.0.0.1, no discovery, relays, NAT, reports",
    engine="syncthing",
    image=ImageBuild(
        "harness/docker/syncthing", "harness/docker/syncthing/Dockerfile", "debian:bookworm-slim"
    ),
    # The API key is in config.xml (written by the harness with the loopback rules: harness.syncthing),
    # never on the command line, where every user of the machine could read it.
    command=(
        "syncthing",
        "serve",
        "--no-browser",
        "--no-restart",
        "--no-upgrade",
        "--home",
        "${data_dir}/syncthing",
        "--gui-address",
        "${syncthing.host}",
    ),
    # 8384 is SyncThing's usual GUI/REST port (the agent's default BOTMOX_AGENT_SYNCTHING_URL).
    ports=(PortSpec("http", 8384),),
    # No default folder, no upgrades, no restarts, no monitor process (the PID held is SyncThing's):
    # harness.syncthing's rules; the image's command reads its home from SYNCTHING_HOME.
    environment=_env({**syncthing.ENVIRONMENT, "SYNCTHING_HOME": "${data_dir}/syncthing"}),
    # The GUI's page: served once the GUI/REST listener is up (1.19's /rest/noauth/health answers a
    # request without a CSRF token or an API key 403, and a health check carries neither).
    health=HealthCheck("http", path="/", timeout_s=60.0),
    state_dir="${data_dir}/syncthing",
)

AGENT = ServiceSpec(
    name="agent",
    description="The customer agent (botmox-agent run), paired with this stack's API at each start",
    engine="agent",
    image=ImageBuild(
        "services/agent",
        "services/agent/Dockerfile",
        _PYTHON_BASE,
        locked_package="botmox-agent",
        workspace_packages=("services/protocol",),
    ),
    command=("python", "-m", "botmox_agent", "run"),
    ports=(PortSpec("http", 8390),),
    # The agent's settings (botmox_agent's AgentSettings, BOTMOX_AGENT_*); the vault holds the agent's
    # credential once paired and SyncThing's API key (secret://syncthing/api-key), put there by the harness.
    environment=_env(
        {
            "BOTMOX_AGENT_SERVER_URL": "${api.url}",
            "BOTMOX_AGENT_STATE_DIR": "${data_dir}/agent",
            "BOTMOX_AGENT_VAULT": "${data_dir}/agent/vault.json",
            "BOTMOX_AGENT_KEY_SOURCE": "passphrase",
            "BOTMOX_AGENT_VAULT_PASSPHRASE": "${secret.agent_vault_passphrase}",
            "BOTMOX_AGENT_NAME": "local-stack",
            "BOTMOX_AGENT_HTTP_ADDRESS": "127.0.0.1:${agent.port}",
            "BOTMOX_AGENT_SYNCTHING_URL": "${syncthing.url}",
            # A one-time code the harness creates with the infra token once the API is healthy; the
            # agent pairs with it on its first start (an empty value: already paired).
            "BOTMOX_AGENT_PAIRING_CODE": "${start.pairing_code}",
        }
    ),
    # 200 once a `welcome` arrived on the agent's current connection to the API.
    health=HealthCheck("http", path="/healthz", timeout_s=60.0),
    depends_on=("api", "syncthing"),
    state_dir="${data_dir}/agent",
    start_values=("pairing_code",),
)

STACK = StackDescription(
    # Description order is start order among equals: the frontend last, so the page opens on a stack
    # whose agent is online.
    services=(POSTGRES, RTDB, SYNCTHING, API, AGENT, FRONTEND),
    migrations=MigrationStep(service="postgres", directory="supabase/migrations", database="botmox"),
)
