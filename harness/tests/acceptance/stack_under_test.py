"""A stack the harness CLI brought up, as the acceptance tests see it: the CLI's own output, the
state file, and direct reads of what the stores hold (raw RTDB nodes over REST, rows over SQL).

The stack is started and stopped with ``python -m harness`` itself (never the runtime's Python API),
each with a private ``BOTMOX_HARNESS_HOME``, so the suite proves the commands a teammate types.
"""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import psycopg
from psycopg.rows import dict_row

from botmox_api.model import DataBackend
from harness import processes
from harness.processes import port_is_listening
from harness.stack.state import HarnessPaths, Runtime, StackState

# Commands other than a docker `up` take seconds; the bound is for a loaded CI machine.
CLI_TIMEOUT_S = 180.0
HTTP_TIMEOUT_S = 10.0
SERVICES = ("postgres", "rtdb", "api", "frontend")


def run_cli(
    environment: Mapping[str, str], *args: str, timeout_s: float = CLI_TIMEOUT_S
) -> subprocess.CompletedProcess[str]:
    """``python -m harness ARGS`` with the project's interpreter (what ``uv run python -m harness`` runs)."""
    return subprocess.run(
        [sys.executable, "-m", "harness", *args],
        env=dict(environment),
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=False,
    )


def transcript(result: subprocess.CompletedProcess[str]) -> str:
    return f"exit {result.returncode}\n--- stdout\n{result.stdout}\n--- stderr\n{result.stderr}"


@dataclass(frozen=True)
class PrintedSummary:
    """What ``up`` printed for a person to copy: the API and frontend URLs and a bearer token."""

    api_url: str
    frontend_url: str
    token: str

    @classmethod
    def parse(cls, output: str) -> PrintedSummary:
        api = re.search(r"^\s*API\s+(http://\S+?)/api/v1\s*$", output, re.MULTILINE)
        frontend = re.search(r"^\s*frontend\s+(http://\S+?)/?\s*$", output, re.MULTILINE)
        token = re.search(r"^Bearer token for tenant .*:\s*\n(\S+)\s*$", output, re.MULTILINE)
        if api is None or frontend is None or token is None:
            raise AssertionError(f"`up` did not print the API URL, frontend URL and token:\n{output}")
        return cls(api.group(1), frontend.group(1), token.group(1))


@dataclass(frozen=True)
class StackUnderTest:
    backend: DataBackend
    runtime: Runtime
    paths: HarnessPaths
    environment: Mapping[str, str]
    up: subprocess.CompletedProcess[str]
    state: StackState
    printed: PrintedSummary

    @property
    def tenant(self) -> str:
        """The tenant of the printed token (the demo tenant)."""
        return "demo"

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        return run_cli(self.environment, *args)

    def api(self, token: str | None = None) -> httpx.Client:
        """A client of the printed API URL with the printed token (or another one)."""
        return httpx.Client(
            base_url=self.printed.api_url,
            headers={"Authorization": f"Bearer {token or self.printed.token}"},
            timeout=HTTP_TIMEOUT_S,
            trust_env=False,
        )

    # -- the RTDB emulator, over its REST protocol ------------------------------------------

    def _rtdb_node_url(self, path: str) -> tuple[str, dict[str, str]]:
        server = urlsplit(self.state.rtdb_url)
        return f"{server.scheme}://{server.netloc}/{path.strip('/')}.json", {"ns": self.state.rtdb_namespace}

    def rtdb_get(self, path: str) -> object:
        """The raw node at ``path`` (``None`` when nothing is stored there)."""
        url, params = self._rtdb_node_url(path)
        response = httpx.get(url, params=params, timeout=HTTP_TIMEOUT_S, trust_env=False)
        response.raise_for_status()
        node: object = response.json()
        return node

    def rtdb_put(self, path: str, value: object) -> None:
        url, params = self._rtdb_node_url(path)
        response = httpx.put(url, params=params, json=value, timeout=HTTP_TIMEOUT_S, trust_env=False)
        response.raise_for_status()

    def settings_node(self, path: str, tenant: str | None = None) -> object:
        """The raw node of a settings path, where the API keeps it: ``tenants/<t>/settings/<path>``."""
        return self.rtdb_get(f"tenants/{tenant or self.tenant}/settings/{path}")

    # -- Supabase's database, as its administrator ------------------------------------------

    def policy_row(self, tenant: str | None = None) -> dict[str, object] | None:
        with psycopg.connect(self.state.supabase_db_url, row_factory=dict_row, connect_timeout=5) as db:
            return db.execute(
                "select tenant_id, secrets, operational, sync_enabled, updated_at_ms, updated_by, version"
                " from public.storage_policies where tenant_id = %s",
                (tenant or self.tenant,),
            ).fetchone()


def leftovers(state: StackState) -> list[str]:
    """What of a stack still runs or listens (empty once `down` did its job)."""
    found = [
        f"{name} (pid {identity.pid}) still runs"
        for name, identity in state.processes.items()
        if processes.is_running(identity)
    ]
    found += [
        f"port {port} of {name} still listens"
        for name, port in state.ports.items()
        if port_is_listening(port)
    ]
    if state.postgres_dir and Path(state.postgres_dir).exists():
        found.append(f"the PostgreSQL directory {state.postgres_dir} is still there")
    return found
