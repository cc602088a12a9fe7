"""compose.local.yaml: rendered from the stack description, committed, and never stale."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
import yaml

from harness.postgres.supabase import find_project_root
from harness.stack.compose import COMPOSE_FILE, render_compose, write_secrets
from harness.stack.credentials import StackCredentials
from harness.stack.description import STACK


def _rendered() -> dict[str, object]:
    document = yaml.safe_load(render_compose())
    assert isinstance(document, dict)
    return document


def test_the_committed_file_is_the_rendered_description() -> None:
    committed = (find_project_root() / COMPOSE_FILE).read_text()
    assert committed == render_compose(), "compose.local.yaml is stale: run `python -m harness compose`"


def test_every_service_is_built_and_runs_on_the_host_network() -> None:
    services = _rendered()["services"]
    assert isinstance(services, dict)
    # The services whose state the harness writes before each start are `up --runtime docker`'s only.
    assert list(services) == [spec.name for spec in STACK.start_order() if spec.state_dir is None]
    assert "agent" not in services
    assert "syncthing" not in services
    assert "Not here: syncthing, agent" in render_compose()
    root = find_project_root()
    for spec in STACK.services:
        if spec.state_dir is not None:
            continue
        service = services[spec.name]
        assert service["network_mode"] == "host"
        assert service["environment"]["HOST"] == "127.0.0.1"
        assert service["environment"]["PORT"] == str(spec.port.default)
        dockerfile = root / service["build"]["context"] / service["build"]["dockerfile"]
        assert dockerfile.resolve() == (root / spec.image.dockerfile).resolve()
        assert dockerfile.is_file()
        assert spec.image.base_image in service["build"]["args"]["BASE_IMAGE"]
        assert service.get("depends_on", []) == list(spec.depends_on)


def test_secrets_are_required_variables_never_values() -> None:
    text = render_compose()
    api = _rendered()["services"]["api"]  # type: ignore[index]
    assert api["environment"]["SUPABASE_JWT_SECRET"].startswith("${BOTMOX_JWT_SECRET:?")
    assert "${BOTMOX_DB_API_PASSWORD:?" in api["environment"]["SUPABASE_DB_URL"]
    generated = StackCredentials.generate()
    assert generated.jwt_secret not in text
    # Host paths mean nothing in a container: no checkout path leaks into the file.
    assert str(find_project_root()) not in text
    assert "FRONTEND_ROOT" not in text


def test_workspace_packages_are_copied_into_the_context_by_hand() -> None:
    assert (
        "#   mkdir -p services/api/workspace/protocol && cp -r services/protocol/pyproject.toml "
        "services/protocol/src services/api/workspace/protocol/"
    ) in render_compose()


def test_rendering_is_deterministic() -> None:
    assert render_compose() == render_compose()


def test_secrets_file_is_private_and_never_overwritten(tmp_path: Path) -> None:
    env_file = tmp_path / ".env"
    write_secrets(env_file)
    assert stat.S_IMODE(env_file.stat().st_mode) == 0o600
    values = dict(
        line.split("=", 1) for line in env_file.read_text().splitlines() if line and not line.startswith("#")
    )
    assert set(values) == {
        "BOTMOX_JWT_SECRET",
        "BOTMOX_INTERNAL_API_TOKEN",
        "BOTMOX_INTERNAL_INFRA_TOKEN",
        "BOTMOX_DB_API_PASSWORD",
    }
    assert all(len(value) >= 32 for value in values.values())
    before = env_file.read_text()
    with pytest.raises(FileExistsError):
        write_secrets(env_file)
    assert env_file.read_text() == before
