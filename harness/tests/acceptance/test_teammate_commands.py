"""A new teammate's commands bring the stack up, in either backend.

`up --detach` (run by the ``stack`` fixture) exits 0 and prints the URLs and a token; the state file
is private and holds what the docs promise; `status` finds every service healthy; the printed token
works on the printed API URL. What `down` leaves behind is checked by the fixture's finalizer.
"""

from __future__ import annotations

import json
import re
import stat

import httpx
import psycopg
import pytest

from harness import processes
from harness.fixtures.cli_stack import SERVICES, StackUnderTest

pytestmark = pytest.mark.integration

# The keys of .harness/state.json that docs/local-development.md ("The state file") promises.
DOCUMENTED_KEYS = frozenset(
    {
        "api_url",
        "frontend_url",
        "data_backend",
        "runtime",
        "supabase_db_url",
        "rtdb_url",
        "rtdb_namespace",
        "jwt_secret",
        "jwt_audience",
        "jwt_issuer",
        "default_tenant_id",
        "internal_api_token",
        "internal_infra_token",
        "syncthing_api_key",
        "agent_vault_passphrase",
        "processes",
    }
)


def test_up_prints_the_urls_and_a_token_that_works(stack: StackUnderTest) -> None:
    assert stack.up.returncode == 0
    assert f"DATA_BACKEND={stack.backend}" in stack.up.stdout
    assert stack.printed.api_url == stack.state.api_url
    assert stack.printed.frontend_url == stack.state.frontend_url
    # BOTMOX_HARNESS_HOME moved the state, logs and data out of the checkout's .harness/.
    assert str(stack.paths.state_file) in stack.up.stdout

    with stack.api() as api:
        settings = api.get("/api/v1/settings")
        assert settings.status_code == 200, settings.text
        assert settings.json()["success"] is True
        principal = api.get("/api/v1/auth/verify")
        assert principal.status_code == 200, principal.text
        assert principal.json()["data"]["tenant_id"] == stack.tenant
        health = api.get("/api/v1/health").json()["data"]
    assert health["data_backend"] == stack.backend
    assert health["rtdb_ready"] is True
    assert health["supabase_ready"] is True

    with httpx.Client(base_url=stack.printed.frontend_url, timeout=10, trust_env=False) as frontend:
        assert frontend.get("/").status_code == 200
        assert json.dumps(stack.printed.api_url) in frontend.get("/runtime-config.js").text


def test_a_token_is_refused_without_the_stacks_secret(stack: StackUnderTest) -> None:
    # The printed token is accepted because of this stack's secret, not because anything passes.
    forged = stack.printed.token[:-4] + ("AAAA" if not stack.printed.token.endswith("AAAA") else "BBBB")
    with stack.api(forged) as api:
        assert api.get("/api/v1/settings").status_code == 401


def test_the_state_file_is_private_and_holds_the_documented_keys(stack: StackUnderTest) -> None:
    state_file = stack.paths.state_file
    assert stat.S_IMODE(state_file.stat().st_mode) == 0o600
    raw = json.loads(state_file.read_text())
    assert raw.keys() >= DOCUMENTED_KEYS, f"missing: {sorted(DOCUMENTED_KEYS - raw.keys())}"
    assert raw["runtime"] == stack.runtime
    assert raw["data_backend"] == stack.backend
    assert raw["jwt_issuer"] is None
    assert set(raw["processes"]) == set(SERVICES)
    for name, identity in stack.state.processes.items():
        assert processes.is_running(identity), f"{name} is not running"

    # The administrator's URL is one: it may read the table the API's own role only sees through RLS.
    with psycopg.connect(raw["supabase_db_url"], connect_timeout=5) as db:
        row = db.execute("select rolsuper from pg_roles where rolname = current_user").fetchone()
        assert row == (True,)
        assert db.execute("select to_regclass('public.storage_policies') is not null").fetchone() == (True,)
    assert stack.rtdb_get(f"tenants/{stack.tenant}/nothing-here") is None


def test_status_shows_every_service_running_and_healthy(stack: StackUnderTest) -> None:
    status = stack.cli("status")
    assert status.returncode == 0, status.stdout + status.stderr
    for name in SERVICES:
        # A row of the table starts with the service's name (after the border), unlike its title.
        row = re.search(rf"^\W*{name}\b.*$", status.stdout, re.MULTILINE)
        assert row is not None, f"no row for {name}:\n{status.stdout}"
        assert re.search(r"\brunning\b.*\bok\b", row.group(0)), row.group(0)


def test_a_second_up_changes_nothing(stack: StackUnderTest) -> None:
    before = stack.paths.state_file.read_bytes()
    again = stack.cli("up", "--detach", "--backend", stack.backend, "--runtime", "native")
    assert again.returncode == 3, again.stdout + again.stderr
    assert "already running" in again.stderr
    assert stack.paths.state_file.read_bytes() == before
