"""The agent suite's fixtures: one native stack for the whole suite, its API behind a TLS proxy.

``agent_stack`` (session) is ``python -m harness up --backend supabase`` in a private
``BOTMOX_HARNESS_HOME``, always stopped with ``down`` (``harness.fixtures.cli_stack``); agents, pairing
codes and commands live in its PostgreSQL whatever the backend. ``proxy`` (per test) terminates TLS
with a throwaway CA (``tls``, session) in front of the API's plain port, as production's reverse
proxy does, and can drop every connection. ``tenant`` hands a test fresh tenants with admin tokens, so
tests never see each other's agents; ``restart_api`` restarts the API process through the harness's
``flip`` (same backend, one extra variable toggled).
"""

from __future__ import annotations

import itertools
import re
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from harness.fixtures.agents_api import AgentsApi
from harness.fixtures.cli_stack import StackUnderTest, cli_stack
from harness.fixtures.loopback_tls import LoopbackTls
from harness.fixtures.tls_proxy import TlsTerminatingProxy

# --import-mode=importlib keeps test directories off sys.path; the suite's helpers live next to it.
sys.path.insert(0, str(Path(__file__).parent))

from agent_suite import BACKEND, AgentFactory, Tenant, admin_token


@pytest.fixture(scope="session")
def agent_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StackUnderTest]:
    with cli_stack(tmp_path_factory.mktemp("harness-home-agents"), BACKEND) as started:
        yield started


@pytest.fixture(scope="session")
def tls(tmp_path_factory: pytest.TempPathFactory) -> LoopbackTls:
    return LoopbackTls.create(tmp_path_factory.mktemp("loopback-tls"))


@pytest.fixture
def proxy(agent_stack: StackUnderTest, tls: LoopbackTls) -> Iterator[TlsTerminatingProxy]:
    with TlsTerminatingProxy(agent_stack.state.ports["api"], tls.server_context()) as started:
        yield started


@pytest.fixture
def api(agent_stack: StackUnderTest) -> Iterator[AgentsApi]:
    """The agent endpoints on the API's plain port (what the tenant's admin and the tests call)."""
    client = AgentsApi(agent_stack.printed.api_url)
    yield client
    client.close()


@pytest.fixture
def tenant(agent_stack: StackUnderTest, request: pytest.FixtureRequest) -> Callable[[], Tenant]:
    """``tenant()``: a fresh tenant of this test, with an admin token."""
    # A tenant id is ^[a-z0-9][a-z0-9_-]{0,62}$ (a parametrized test's name has brackets).
    stem = re.sub(r"[^a-z0-9-]+", "-", request.node.name.removeprefix("test_").lower())[:30].strip("-")
    numbers = itertools.count()

    def make() -> Tenant:
        tenant_id = f"e2e-{stem}-{next(numbers)}-{uuid.uuid4().hex[:6]}"
        return Tenant(tenant_id, admin_token(agent_stack, tenant_id))

    return make


@pytest.fixture
def agents(
    agent_stack: StackUnderTest, api: AgentsApi, proxy: TlsTerminatingProxy, tls: LoopbackTls, tmp_path: Path
) -> Iterator[AgentFactory]:
    factory = AgentFactory(agent_stack, api, proxy, tls, tmp_path / "agents", [])
    yield factory
    for agent in factory.started:
        agent.stop()
