"""What each kind of service (the description's ``engine``) needs beyond "run this command".

The lifecycle (``harness.stack.lifecycle``) and every runtime ask a service's component, never its
engine: how it is stopped (PostgreSQL: SIGINT, its fast shutdown, to the postmaster alone; in
Compose too), what its health check connects to, how it runs from a checkout (PostgreSQL: initdb
first, as the ``postgres`` user, in a directory that user can reach), whether migrations apply
to it, and what the harness writes before each start in either runtime (SyncThing: its home with the
loopback rules; the agent: its vault and a pairing code). A new kind of service is one class here
and one entry in ``COMPONENTS``.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from harness import processes
from harness.postgres.cluster import STOP_LADDER, PostgresCluster, dsn
from harness.postgres.migrated import API_ROLE, migrate
from harness.postgres.supabase import SupabaseCli, ToolResult
from harness.stack.agent_setup import AgentSetupFailed, create_pairing_code, seed_vault
from harness.stack.description import Engine, MigrationStep, ServiceSpec, StackDescription, render
from harness.stack.values import StackValues, render_service
from harness.syncthing import SyncthingStartError, configure_home


class NotMigratable(RuntimeError):
    """The description asks for migrations on a service that has no database."""


class StackPreparationFailed(RuntimeError):
    """What a service needs before it starts could not be made (the message names no secret)."""


@dataclass(frozen=True, slots=True)
class NativeLaunch:
    """How the native runtime runs a service: its command, and what must happen before it."""

    command: tuple[str, ...]
    environment: Mapping[str, str]
    account: processes.Account | None = None
    # A directory outside .harness the service keeps its data in (recorded, removed on down).
    scratch_dir: Path | None = None
    prepare: Callable[[], None] | None = None
    # Where it runs; None: the stack's data directory.
    cwd: Path | None = None


@dataclass(frozen=True, slots=True)
class ProcessComponent:
    """A program that runs in the foreground with the description's command and environment."""

    spec: ServiceSpec
    stop_ladder: ClassVar[processes.Ladder] = processes.TERMINATE
    # Helpers a service forks go with it.
    stop_whole_group: ClassVar[bool] = True
    stop_signal: ClassVar[str] = "SIGTERM"
    # What `status` shows as its address.
    url_scheme: ClassVar[str] = "http://"

    def health_target(self, description: StackDescription, values: StackValues) -> str:
        return render_service(description, self.spec.name, values).health_url

    def native_launch(self, description: StackDescription, values: StackValues) -> NativeLaunch:
        rendered = render_service(description, self.spec.name, values)
        # "python" in the description is whatever interpreter runs the harness (the project's venv).
        command = tuple(sys.executable if part == "python" else part for part in rendered.command)
        return NativeLaunch(command, rendered.environment)

    def migrate(self, step: MigrationStep, values: StackValues, cli: SupabaseCli) -> ToolResult:
        raise NotMigratable(f"{self.spec.name} runs no database; migrations need a postgresql service")

    def before_start(self, description: StackDescription, values: StackValues) -> Mapping[str, str]:
        """Runs on the host before each start, in both runtimes, once what it depends on is healthy;
        returns the service's start values (``ServiceSpec.start_values``). Creates its state directory."""
        state_dir = render_service(description, self.spec.name, values).state_dir
        if state_dir is not None:
            state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        return {}


@dataclass(frozen=True, slots=True)
class PostgresComponent(ProcessComponent):
    """A PostgreSQL server: initdb before the first start, migrated once healthy."""

    stop_ladder: ClassVar[processes.Ladder] = STOP_LADDER
    # Only the postmaster is signalled; it stops its backends itself.
    stop_whole_group: ClassVar[bool] = False
    stop_signal: ClassVar[str] = "SIGINT"
    url_scheme: ClassVar[str] = ""

    def health_target(self, description: StackDescription, values: StackValues) -> str:
        return dsn(port=values.ports[self.spec.name], dbname="postgres")

    def native_launch(self, description: StackDescription, values: StackValues) -> NativeLaunch:
        # The cluster lives in the system temp dir, not under .harness: the postgres user must be
        # able to reach its data dir, and a checkout in root's home (0700) is out of its reach. The
        # description's ${data_dir} is that directory here.
        cluster = PostgresCluster(port=values.ports[self.spec.name], password_users=(API_ROLE,))
        filled = {**values.placeholders(), "data_dir": str(cluster.root)}
        base = [render(part, filled) for part in self.spec.command]
        return NativeLaunch(
            command=tuple(cluster.server_command(base)),
            environment={},
            account=cluster.account,
            scratch_dir=cluster.root,
            prepare=cluster.initdb,
            cwd=cluster.root,
        )

    def migrate(self, step: MigrationStep, values: StackValues, cli: SupabaseCli) -> ToolResult:
        return migrate(
            port=values.ports[self.spec.name],
            database=step.database,
            api_password=values.credentials.db_api_password,
            cli=cli,
        )


@dataclass(frozen=True, slots=True)
class SyncthingComponent(ProcessComponent):
    """SyncThing on a home the harness writes before each start (``harness.syncthing``): keys, and a
    config.xml with the loopback rules (no discovery, relays, NAT, usage or crash reports, upgrades)
    and the GUI's address and API key. Written on the host with the host's ``syncthing generate`` in
    both runtimes; the container runs the same home, mounted at the same path."""

    def before_start(self, description: StackDescription, values: StackValues) -> Mapping[str, str]:
        ProcessComponent.before_start(self, description, values)
        home = render_service(description, self.spec.name, values).state_dir
        assert home is not None, "a syncthing service has a state directory (its home)"
        try:
            configure_home(
                home, gui_port=values.ports[self.spec.name], api_key=values.credentials.syncthing_api_key
            )
        except (SyncthingStartError, OSError) as error:
            raise StackPreparationFailed(str(error)) from None
        return {}


@dataclass(frozen=True, slots=True)
class AgentComponent(ProcessComponent):
    """The customer agent: its vault seeded with SyncThing's API key, and a one-time pairing code
    created with the infra token once the API is healthy (``harness.stack.agent_setup``)."""

    pairing_code: ClassVar[str] = "pairing_code"

    def before_start(self, description: StackDescription, values: StackValues) -> Mapping[str, str]:
        ProcessComponent.before_start(self, description, values)
        environment = render_service(description, self.spec.name, values).environment
        try:
            seed_vault(
                Path(environment["BOTMOX_AGENT_VAULT"]),
                passphrase=values.credentials.agent_vault_passphrase,
                syncthing_api_key=values.credentials.syncthing_api_key,
            )
            code = create_pairing_code(values.url("api"), values.credentials.internal_infra_token)
        except AgentSetupFailed as error:
            raise StackPreparationFailed(str(error)) from None
        return {self.pairing_code: code}


COMPONENTS: Mapping[Engine, type[ProcessComponent]] = {
    "process": ProcessComponent,
    "postgresql": PostgresComponent,
    "syncthing": SyncthingComponent,
    "agent": AgentComponent,
}


def component_of(spec: ServiceSpec) -> ProcessComponent:
    return COMPONENTS[spec.engine](spec)
