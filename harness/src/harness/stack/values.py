"""The values of one stack (ports, secrets, backend, paths) and the placeholders templates use.

Every service is reachable on 127.0.0.1 in both runtimes (processes, or containers on the host
network), so the URLs below hold for native and docker alike.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import get_args

from botmox_api.model import DataBackend
from harness.stack.credentials import StackCredentials
from harness.stack.description import START_PREFIX, StackDescription, check_extra_environment, render
from harness.stack.tokens import DEMO_TENANT_ID, demo_token

DATA_BACKENDS: tuple[DataBackend, ...] = get_args(DataBackend)
LOOPBACK = "127.0.0.1"
API_DB_ROLE = "botmox_api"
DB_SUPERUSER = "postgres"
RTDB_NAMESPACE = "botmox-local"
# The internal tokens' tenant is the demo token's: what the harness pairs with the infra token (the
# agent) is the demo tenant's, so both see it.
DEFAULT_TENANT_ID = DEMO_TENANT_ID
JWT_AUDIENCE = "authenticated"


@dataclass(frozen=True, slots=True)
class StackValues:
    backend: DataBackend
    ports: Mapping[str, int]
    credentials: StackCredentials
    project_root: Path
    data_dir: Path
    database: str
    rtdb_namespace: str = RTDB_NAMESPACE
    default_tenant_id: str = DEFAULT_TENANT_ID
    jwt_audience: str = JWT_AUDIENCE
    # The API's uvicorn worker processes (API_WORKERS).
    api_workers: int = 1
    # Variables a service gets on top of the description's, by service (`up --api-env NAME=VALUE`):
    # features the stack does not configure itself, such as STORAGE_POLICY_SHADOW. Literal values.
    extra_environment: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    # What components computed for the start under way (``${start.NAME}``; never in the state file).
    start_values: Mapping[str, str] = field(default_factory=dict)

    def with_backend(self, backend: DataBackend) -> StackValues:
        return replace(self, backend=backend)

    def url(self, service: str) -> str:
        return f"http://{LOOPBACK}:{self.ports[service]}"

    @property
    def rtdb_url(self) -> str:
        return f"{self.url('rtdb')}?ns={self.rtdb_namespace}"

    def postgres_url(self, *, admin: bool) -> str:
        auth = DB_SUPERUSER if admin else f"{API_DB_ROLE}:{self.credentials.db_api_password}"
        return f"postgresql://{auth}@{LOOPBACK}:{self.ports['postgres']}/{self.database}?sslmode=disable"

    def placeholders(self) -> dict[str, str]:
        values: dict[str, str] = {
            "backend": self.backend,
            "supabase_required": "true" if self.backend == "supabase" else "false",
            "project_root": str(self.project_root),
            "data_dir": str(self.data_dir),
            "rtdb_namespace": self.rtdb_namespace,
            "default_tenant_id": self.default_tenant_id,
            "jwt_audience": self.jwt_audience,
            "api_workers": str(self.api_workers),
            "demo_token": demo_token(secret=self.credentials.jwt_secret, audience=self.jwt_audience),
            **self.credentials.placeholders(),
        }
        for service, port in self.ports.items():
            values[f"{service}.port"] = str(port)
            values[f"{service}.host"] = f"{LOOPBACK}:{port}"
            values[f"{service}.url"] = self.url(service)
        if "postgres" in self.ports:
            values["postgres.api_url"] = self.postgres_url(admin=False)
            values["postgres.admin_url"] = self.postgres_url(admin=True)
        if "rtdb" in self.ports:
            # rtdb.url is the database URL with its namespace, not the bare server.
            values["rtdb.url"] = self.rtdb_url
        return values


@dataclass(frozen=True, slots=True)
class RenderedService:
    """A service's command, environment and health URL with every placeholder filled."""

    name: str
    command: tuple[str, ...]
    environment: dict[str, str]
    health_url: str
    # The service's state directory (ServiceSpec.state_dir), None when it has none.
    state_dir: Path | None = None


def render_service(description: StackDescription, name: str, values: StackValues) -> RenderedService:
    spec = description.service(name)
    check_extra_environment(description, values.extra_environment)
    filled = values.placeholders()
    # Outside a start (status, stack-env) a start value is unknown: empty.
    filled.update({START_PREFIX + key: values.start_values.get(key, "") for key in spec.start_values})
    return RenderedService(
        name=name,
        command=tuple(render(part, filled) for part in spec.command),
        environment={
            **{key: render(value, filled) for key, value in spec.environment.items()},
            **values.extra_environment.get(name, {}),
        },
        health_url=values.url(name) + render(spec.health.path, filled),
        state_dir=Path(render(spec.state_dir, filled)) if spec.state_dir is not None else None,
    )
