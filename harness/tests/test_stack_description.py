"""The stack description is consistent, and every template in it resolves from a stack's values."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from harness.stack.credentials import StackCredentials
from harness.stack.description import (
    AGENT,
    API,
    FRONTEND,
    POSTGRES,
    RTDB,
    STACK,
    SYNCTHING,
    DescriptionError,
    MigrationStep,
    StackDescription,
    check,
    check_extra_environment,
    placeholders_in,
    render,
)
from harness.stack.values import StackValues, render_service


def _values(backend: str = "rtdb") -> StackValues:
    return StackValues(
        backend="supabase" if backend == "supabase" else "rtdb",
        ports={
            "postgres": 15432,
            "rtdb": 19000,
            "api": 18000,
            "frontend": 15173,
            "syncthing": 18384,
            "agent": 18390,
        },
        credentials=StackCredentials.generate(),
        project_root=Path("/project"),
        data_dir=Path("/project/.harness/data"),
        database="botmox",
    )


def test_the_stack_is_consistent() -> None:
    check(STACK)
    assert set(STACK.names()) == {"postgres", "rtdb", "api", "frontend", "syncthing", "agent"}
    ports = [port.default for service in STACK.services for port in service.ports]
    assert len(ports) == len(set(ports))


def test_start_order_puts_every_service_after_its_dependencies() -> None:
    order = [service.name for service in STACK.start_order()]
    for service in STACK.services:
        for dependency in service.depends_on:
            assert order.index(dependency) < order.index(service.name)
    assert [service.name for service in STACK.stop_order()] == list(reversed(order))
    # The agent pairs with the API and uses its SyncThing; the page opens on a stack whose agent is
    # online; the agent stops before the API it is connected to.
    assert order == ["postgres", "rtdb", "syncthing", "api", "agent", "frontend"]


@pytest.mark.parametrize(
    ("services", "message"),
    [
        ((POSTGRES, POSTGRES), "duplicate service names"),
        ((POSTGRES, dataclasses.replace(RTDB, ports=POSTGRES.ports)), "duplicate default ports"),
        ((RTDB, API), "unknown service 'postgres'"),
        (
            (
                dataclasses.replace(POSTGRES, depends_on=("frontend",)),
                RTDB,
                API,
                FRONTEND,
            ),
            "dependency cycle",
        ),
        ((POSTGRES, dataclasses.replace(RTDB, ports=())), "has no port"),
    ],
)
def test_check_refuses_contradictions(services: tuple[object, ...], message: str) -> None:
    description = StackDescription(services=services)  # type: ignore[arg-type]
    with pytest.raises(DescriptionError, match=message):
        check(description)


def test_migrations_must_target_a_service_of_the_stack() -> None:
    description = StackDescription(services=(RTDB,), migrations=MigrationStep("postgres", "m", "db"))
    with pytest.raises(DescriptionError, match="migrations target"):
        check(description)


@pytest.mark.parametrize("name", ["postgres", "rtdb", "api", "frontend", "syncthing", "agent"])
@pytest.mark.parametrize("backend", ["rtdb", "supabase"])
def test_every_template_resolves(name: str, backend: str) -> None:
    rendered = render_service(STACK, name, _values(backend))
    for part in (*rendered.command, *rendered.environment.values(), rendered.health_url):
        assert "${" not in part
    assert rendered.health_url.startswith("http://127.0.0.1:")


def test_the_api_environment_carries_the_stack_values() -> None:
    values = _values("supabase")
    environment = render_service(STACK, "api", values).environment
    assert environment["DATA_BACKEND"] == "supabase"
    assert environment["REQUIRE_SUPABASE_READY"] == "true"
    assert environment["SUPABASE_JWT_SECRET"] == values.credentials.jwt_secret
    assert environment["INTERNAL_API_TOKEN"] == values.credentials.internal_api_token
    assert environment["SUPABASE_DB_URL"] == (
        f"postgresql://botmox_api:{values.credentials.db_api_password}@127.0.0.1:15432/botmox?sslmode=disable"
    )
    assert environment["FIREBASE_DATABASE_EMULATOR_HOST"] == "127.0.0.1:19000"
    assert environment["FIREBASE_DATABASE_URL"] == "http://127.0.0.1:19000?ns=botmox-local"
    assert environment["PORT"] == "18000"
    assert environment["HOST"] == "127.0.0.1"
    assert "http://127.0.0.1:15173" in environment["CORS_ORIGINS"].split(",")
    rtdb_environment = render_service(STACK, "api", values.with_backend("rtdb")).environment
    assert rtdb_environment["REQUIRE_SUPABASE_READY"] == "false"
    assert environment["API_WORKERS"] == "1"
    workers = dataclasses.replace(values, api_workers=3)
    assert render_service(STACK, "api", workers).environment["API_WORKERS"] == "3"


def test_no_secret_is_written_in_the_description() -> None:
    # Secret-looking variables must come from the generated values, never from a literal.
    for service in STACK.services:
        for variable, template in service.environment.items():
            if any(
                word in variable for word in ("SECRET", "TOKEN", "PASSWORD", "PASSPHRASE", "CODE", "DB_URL")
            ):
                assert placeholders_in(template), f"{service.name}.{variable} is a literal"


def test_secrets_are_fresh_and_long_enough() -> None:
    first, second = StackCredentials.generate(), StackCredentials.generate()
    for field in dataclasses.fields(StackCredentials):
        assert getattr(first, field.name) != getattr(second, field.name)
    assert len(first.internal_api_token) >= 32
    assert len(first.internal_infra_token) >= 32
    assert len(first.jwt_secret) >= 32


def test_render_names_a_missing_placeholder() -> None:
    with pytest.raises(KeyError, match=r"api\.port"):
        render("http://127.0.0.1:${api.port}", {})
    assert render("${a.b}-$$", {"a.b": "x"}) == "x-$"


def test_extra_variables_reach_their_service_only() -> None:
    values = dataclasses.replace(_values(), extra_environment={"api": {"STORAGE_POLICY_SHADOW": "on"}})
    assert render_service(STACK, "api", values).environment["STORAGE_POLICY_SHADOW"] == "on"
    assert "STORAGE_POLICY_SHADOW" not in render_service(STACK, "frontend", values).environment
    # Literal values: a placeholder in one is not filled.
    literal = dataclasses.replace(_values(), extra_environment={"api": {"NOTE": "${api.port}"}})
    assert render_service(STACK, "api", literal).environment["NOTE"] == "${api.port}"


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"api": {"DATA_BACKEND": "supabase"}}, "DATA_BACKEND of api is set by the stack itself"),
        ({"api": {"PORT": "1"}}, "PORT of api is set by the stack itself"),
        ({"api": {"BAD-NAME": "1"}}, "'BAD-NAME' is no environment variable name"),
        ({"nosuch": {"X": "1"}}, "unknown service 'nosuch'"),
        (
            {"agent": {"BOTMOX_AGENT_PAIRING_CODE": "x"}},
            "BOTMOX_AGENT_PAIRING_CODE of agent is set by the stack",
        ),
    ],
)
def test_extra_variables_may_not_redo_what_the_stack_sets(
    extra: dict[str, dict[str, str]], message: str
) -> None:
    with pytest.raises(DescriptionError, match=message):
        check_extra_environment(STACK, extra)
    with pytest.raises(DescriptionError, match=message):
        render_service(STACK, "api", dataclasses.replace(_values(), extra_environment=extra))


def test_the_agent_environment_follows_the_agent_settings_contract() -> None:
    """docs: seams of issue 16, section 2 (AgentSettings, BOTMOX_AGENT_*)."""
    values = dataclasses.replace(_values(), start_values={"pairing_code": "one-time-code"})
    environment = render_service(STACK, "agent", values).environment
    assert environment == {
        "BOTMOX_AGENT_SERVER_URL": "http://127.0.0.1:18000",
        "BOTMOX_AGENT_STATE_DIR": "/project/.harness/data/agent",
        "BOTMOX_AGENT_VAULT": "/project/.harness/data/agent/vault.json",
        "BOTMOX_AGENT_KEY_SOURCE": "passphrase",
        "BOTMOX_AGENT_VAULT_PASSPHRASE": values.credentials.agent_vault_passphrase,
        "BOTMOX_AGENT_NAME": "local-stack",
        "BOTMOX_AGENT_HTTP_ADDRESS": "127.0.0.1:18390",
        "BOTMOX_AGENT_SYNCTHING_URL": "http://127.0.0.1:18384",
        "BOTMOX_AGENT_PAIRING_CODE": "one-time-code",
    }
    assert render_service(STACK, "agent", values).health_url == "http://127.0.0.1:18390/healthz"
    assert render_service(STACK, "agent", values).state_dir == Path("/project/.harness/data/agent")
    # Outside a start (status, stack-env) the pairing code is unknown: empty, never another start's.
    assert render_service(STACK, "agent", _values()).environment["BOTMOX_AGENT_PAIRING_CODE"] == ""
    assert set(AGENT.depends_on) == {"api", "syncthing"}
    assert AGENT.image.workspace_packages == ("services/protocol",)
    assert API.image.workspace_packages == ("services/protocol",)


def test_syncthing_keeps_its_key_off_the_command_line() -> None:
    rendered = render_service(STACK, "syncthing", _values())
    assert rendered.command[:2] == ("syncthing", "serve")
    assert rendered.command[rendered.command.index("--home") + 1] == "/project/.harness/data/syncthing"
    assert rendered.command[rendered.command.index("--gui-address") + 1] == "127.0.0.1:18384"
    assert not any("apikey" in part for part in rendered.command)
    assert _values().credentials.syncthing_api_key not in " ".join(rendered.command)
    assert {"STNODEFAULTFOLDER": "1", "STNOUPGRADE": "1"}.items() <= rendered.environment.items()
    assert rendered.state_dir == Path("/project/.harness/data/syncthing")
    assert SYNCTHING.depends_on == ()


def test_the_internal_tokens_act_in_the_demo_tenant() -> None:
    """The agent the harness pairs with the infra token is the demo tenant's, so both see it."""
    assert render_service(STACK, "api", _values()).environment["DEFAULT_TENANT_ID"] == "demo"


@pytest.mark.parametrize(
    ("service", "message"),
    [
        (
            dataclasses.replace(AGENT, start_values=()),
            r"start values it does not declare: \['pairing_code'\]",
        ),
        (dataclasses.replace(AGENT, state_dir="/var/lib/agent"), "must be under"),
        (
            dataclasses.replace(
                AGENT,
                image=dataclasses.replace(
                    AGENT.image, workspace_packages=("services/protocol", "other/protocol")
                ),
            ),
            "share a directory name",
        ),
    ],
)
def test_check_refuses_a_broken_service(service: object, message: str) -> None:
    description = StackDescription(services=(POSTGRES, RTDB, SYNCTHING, API, service))  # type: ignore[arg-type]
    with pytest.raises(DescriptionError, match=message):
        check(description)
