"""The host's secrets tool (deploy/tasks/hostscripts/botmox_secrets.py), run locally."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from deploy.tasks.secrets import CONTROL_PLANE_JWTS, CONTROL_PLANE_RANDOM, ensure_command
from deploy.tests.secrets_tool import load_secrets_tool

tool = load_secrets_tool()
NOW = 1_800_000_000


def _ensure(path: Path, exports: dict[str, Path] | None = None) -> list[str]:
    written: list[str] = tool.ensure(
        path,
        randoms=list(CONTROL_PLANE_RANDOM),
        jwts=dict(CONTROL_PLANE_JWTS),
        exports=exports or {},
        now=NOW,
    )
    return written


def test_first_run_generates_everything_0600(tmp_path: Path) -> None:
    path = tmp_path / "secrets" / "control-plane.env"
    written = _ensure(path)
    assert written == [*CONTROL_PLANE_RANDOM, *CONTROL_PLANE_JWTS]
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    values = tool.parse_env(path.read_text())
    assert all(len(values[name]) >= 43 for name in CONTROL_PLANE_RANDOM)


def test_a_rerun_keeps_every_value(tmp_path: Path) -> None:
    path = tmp_path / "control-plane.env"
    _ensure(path)
    before = path.read_text()
    assert _ensure(path) == []
    assert path.read_text() == before


def test_keys_are_hs256_jwts_of_the_secret_with_their_role(tmp_path: Path) -> None:
    path = tmp_path / "control-plane.env"
    _ensure(path)
    values = tool.parse_env(path.read_text())
    assert tool.jwt_role(values["ANON_KEY"], values["JWT_SECRET"], NOW) == "anon"
    assert tool.jwt_role(values["SERVICE_ROLE_KEY"], values["JWT_SECRET"], NOW) == "service_role"
    assert tool.jwt_role(values["ANON_KEY"], "another secret", NOW) is None


def test_keys_verify_with_a_standard_jwt_library(tmp_path: Path) -> None:
    jwt = pytest.importorskip("jwt")
    secret = "s" * 40
    token = tool.mint_jwt(secret, "anon", NOW)
    claims = jwt.decode(
        token, secret, algorithms=["HS256"], options={"verify_exp": False, "verify_iat": False}
    )
    assert claims["role"] == "anon"
    assert claims["iss"] == "supabase"


def test_a_rotated_secret_re_mints_the_keys(tmp_path: Path) -> None:
    path = tmp_path / "control-plane.env"
    _ensure(path)
    values = tool.parse_env(path.read_text())
    del values["JWT_SECRET"]
    path.write_text(tool.format_env(values))
    written = _ensure(path)
    assert written == ["JWT_SECRET", "ANON_KEY", "SERVICE_ROLE_KEY"]
    fresh = tool.parse_env(path.read_text())
    assert fresh["POSTGRES_PASSWORD"] == values["POSTGRES_PASSWORD"]
    assert tool.jwt_role(fresh["ANON_KEY"], fresh["JWT_SECRET"], NOW) == "anon"


def test_exports_write_the_single_value_0600(tmp_path: Path) -> None:
    path = tmp_path / "control-plane.env"
    target = tmp_path / "internal-infra-token"
    _ensure(path, {"INTERNAL_INFRA_TOKEN": target})
    assert target.read_text() == tool.parse_env(path.read_text())["INTERNAL_INFRA_TOKEN"]
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert _ensure(path, {"INTERNAL_INFRA_TOKEN": target}) == []


def test_the_command_line_prints_names_never_values(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "agent.env"
    assert tool.main(["ensure", str(path), "--random", "BOTMOX_AGENT_VAULT_PASSPHRASE"]) == 0
    value = tool.parse_env(path.read_text())["BOTMOX_AGENT_VAULT_PASSPHRASE"]
    out = capsys.readouterr().out
    assert out == "wrote: BOTMOX_AGENT_VAULT_PASSPHRASE\n"
    assert value not in out


def test_jwt_without_a_secret_is_refused(tmp_path: Path) -> None:
    assert tool.main(["ensure", str(tmp_path / "x.env"), "--jwt", "ANON_KEY=anon"]) == 1


def test_ensure_command_is_quoted() -> None:
    command = ensure_command(
        "/etc/botmox/secrets/a.env", ["A"], {"K": "anon"}, {"A": "/etc/botmox/secrets/a"}
    )
    assert command == (
        "/usr/local/sbin/botmox-secrets ensure /etc/botmox/secrets/a.env --random A --jwt K=anon "
        "--export A=/etc/botmox/secrets/a"
    )
