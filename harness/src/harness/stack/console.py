"""What the CLI shows: progress of slow steps, the summary after ``up``, the status table."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator

from rich.console import Console
from rich.table import Table

from harness.processes import is_running
from harness.stack.components import component_of
from harness.stack.description import STACK, StackDescription
from harness.stack.health import probe
from harness.stack.lifecycle import values_of
from harness.stack.state import HarnessPaths, StackState
from harness.stack.tokens import DEMO_TENANT_ID, demo_token
from harness.stack.values import render_service


class RichReporter:
    """A spinner while a step runs, then one line with its duration."""

    def __init__(self, console: Console) -> None:
        self.console = console

    @contextlib.contextmanager
    def step(self, label: str) -> Iterator[None]:
        began = time.monotonic()
        with self.console.status(f"{label}..."):
            yield
        self.console.print(f"[green]✓[/] {label} [dim]({time.monotonic() - began:.1f} s)[/]")

    def note(self, message: str) -> None:
        self.console.print(message)


def token_for(state: StackState) -> str:
    return demo_token(secret=state.jwt_secret, audience=state.jwt_audience, issuer=state.jwt_issuer)


# The API's variables an administrator's tool (the storage-policy cutover) needs to reach the
# stack's backends; the rest of the API's environment (tokens, ports, CORS) is the API's own.
ADMIN_VARIABLES = (
    "APP_ENV",
    "FIREBASE_DATABASE_URL",
    "FIREBASE_DATABASE_EMULATOR_HOST",
    "DEFAULT_TENANT_ID",
)


# The agent's variables its own commands need to act on the stack's agent (`botmox-agent status`,
# `botmox-agent vault list`): its state directory and vault with their key. Never its pairing code,
# a value of its start alone.
AGENT_ADMIN_VARIABLES = (
    "BOTMOX_AGENT_SERVER_URL",
    "BOTMOX_AGENT_STATE_DIR",
    "BOTMOX_AGENT_VAULT",
    "BOTMOX_AGENT_KEY_SOURCE",
    "BOTMOX_AGENT_VAULT_PASSPHRASE",
    "BOTMOX_AGENT_SYNCTHING_URL",
)


def admin_environment(state: StackState) -> dict[str, str]:
    """The API's own variables for this stack, with the database's administrator DSN as
    ``SUPABASE_DB_URL`` (the API's is the ``botmox_api`` role's, confined by row-level security),
    and the agent's for its CLI (a stack without an agent, from before it joined, has none)."""
    values = values_of(state)
    api = render_service(STACK, "api", values).environment
    exported = {"SUPABASE_DB_URL": state.supabase_db_url, **{name: api[name] for name in ADMIN_VARIABLES}}
    if "agent" in state.ports:
        agent = render_service(STACK, "agent", values).environment
        exported.update({name: agent[name] for name in AGENT_ADMIN_VARIABLES})
    return exported


def print_summary(console: Console, state: StackState, paths: HarnessPaths, *, detached: bool) -> None:
    token = token_for(state)
    console.print()
    workers = f", API_WORKERS={state.api_workers}" if state.api_workers > 1 else ""
    console.print(f"[bold]Stack up[/] (runtime {state.runtime}, DATA_BACKEND={state.data_backend}{workers})")
    console.print(f"  API          {state.api_url}/api/v1")
    console.print(f"  frontend     {state.frontend_url}/")
    console.print(f"  PostgreSQL   {state.supabase_db_url}")
    console.print(f"  RTDB         {state.rtdb_url}")
    if "agent" in state.ports:
        console.print(
            f"  agent        http://127.0.0.1:{state.ports['agent']}/healthz   paired with the API as tenant "
            f"{state.default_tenant_id}: GET /api/v1/agents"
        )
    if "syncthing" in state.ports:
        console.print(
            f"  SyncThing    http://127.0.0.1:{state.ports['syncthing']}/   the agent's own "
            "(its API key: syncthing_api_key in the state file)"
        )
    console.print(f"  state file   {paths.state_file}   logs {paths.logs}/")
    for service, variables in sorted(state.extra_environment.items()):
        # Names only: a value may be a secret, and the state file holds them all.
        console.print(f"  extra variables of {service}: {', '.join(sorted(variables))}")
    console.print()
    console.print(f"Bearer token for tenant [bold]{DEMO_TENANT_ID}[/] (12 h):")
    # Printed bare, without wrapping or markup, so it can be copied as is.
    console.print(token, soft_wrap=True, markup=False, highlight=False)
    console.print()
    console.print(
        f"  curl -H 'Authorization: Bearer {token}' {state.api_url}/api/v1/settings",
        soft_wrap=True,
        markup=False,
        highlight=False,
    )
    console.print()
    if detached:
        console.print("Detached: `python -m harness status`, `logs`, `flip`, `down`.")
    else:
        console.print("Press Ctrl-C to stop the stack.")


def status_table(description: StackDescription, state: StackState) -> tuple[Table, bool]:
    """The table and whether every service runs and passes its health check."""
    table = Table(title=f"stack: runtime {state.runtime}, DATA_BACKEND={state.data_backend}")
    for column in ("service", "pid", "url", "process", "health"):
        table.add_column(column)
    all_healthy = True
    values = values_of(state)
    for spec in description.start_order():
        if spec.name not in state.ports:
            # A stack started before the description had this service.
            continue
        component = component_of(spec)
        identity = state.processes.get(spec.name)
        running = identity is not None and is_running(identity)
        healthy = running and probe(spec.health, component.health_target(description, values))
        all_healthy = all_healthy and healthy
        url = f"{component.url_scheme}127.0.0.1:{state.ports[spec.name]}"
        table.add_row(
            spec.name,
            str(identity.pid) if identity else "-",
            url,
            "[green]running[/]" if running else "[red]gone[/]",
            "[green]ok[/]" if healthy else "[red]failing[/]",
        )
    if state.supervisor is not None:
        alive = is_running(state.supervisor)
        table.add_row(
            "(up, foreground)",
            str(state.supervisor.pid),
            "-",
            "[green]running[/]" if alive else "[red]gone[/]",
            "-",
        )
    return table, all_healthy
