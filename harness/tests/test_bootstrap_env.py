"""``python -m harness env``: parsing recorded ``supabase status -o json`` output, editing
the env file in place (mode 0600, foreign lines kept), errors with exit 2, and the botmox_api password
set through DB_URL against a private migrated PostgreSQL."""

from __future__ import annotations

import json
import stat
import sys
from pathlib import Path

import psycopg
import pytest
from dotenv import dotenv_values

from harness.bootstrap_env import (
    MANAGED_KEYS,
    BootstrapError,
    dotenv_value,
    parse_status,
    scram_sha256_verifier,
    with_credentials,
)
from harness.cli.app import app
from harness.postgres.migrated import PrivatePostgres


def run(args: list[str]) -> int:
    """``python -m harness env ARGS`` in this process (its output reaches capsys); its exit status."""
    with pytest.raises(SystemExit) as exited:
        app(["env", *args], prog_name="python -m harness")
    return int(exited.value.code or 0)


# Hand-written in the format of `supabase status -o json` (CLI 2.x: a flat object of strings).
# The keys are the CLI's demo values for a local stack, not secrets of anything real.
RECORDED_STATUS = {
    "ANON_KEY": "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.anon.signature",
    "API_URL": "http://127.0.0.1:54321",
    "DB_URL": "postgresql://postgres:postgres@127.0.0.1:54322/postgres",
    "FUNCTIONS_URL": "http://127.0.0.1:54321/functions/v1",
    "GRAPHQL_URL": "http://127.0.0.1:54321/graphql/v1",
    "INBUCKET_URL": "http://127.0.0.1:54324",
    "JWT_SECRET": "super-secret-jwt-token-with-at-least-32-characters-long",
    "MAILPIT_URL": "http://127.0.0.1:54324",
    "MCP_URL": "http://127.0.0.1:54321/mcp",
    "PUBLISHABLE_KEY": "sb_publishable_ACJWlzQHlZjBrEguHvfOxg_3BJgxAaH",
    "REST_URL": "http://127.0.0.1:54321/rest/v1",
    "S3_PROTOCOL_ACCESS_KEY_ID": "625729a08b95bf1b7ff351a663f3a23c",
    "S3_PROTOCOL_ACCESS_KEY_SECRET": "850181e4652dd023b7a98c58ae0d2d34bd487ee0cc3254aed6eda37307425907",
    "S3_PROTOCOL_REGION": "local",
    "SECRET_KEY": "sb_secret_N7UND0UgjKTVK-Uodkm0Hg_xSvEMPvz",
    "SERVICE_ROLE_KEY": "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.service_role.signature",
    "STORAGE_S3_URL": "http://127.0.0.1:54321/storage/v1/s3",
    "STUDIO_URL": "http://127.0.0.1:54323",
}
SECRETS = (RECORDED_STATUS["JWT_SECRET"], RECORDED_STATUS["SERVICE_ROLE_KEY"], "postgres:postgres")
# Neither service-role key ever reaches the env file: the API does not need one.
SERVICE_ROLE_KEYS = (RECORDED_STATUS["SERVICE_ROLE_KEY"], RECORDED_STATUS["SECRET_KEY"])


def _status_file(tmp_path: Path, status: dict[str, str] = RECORDED_STATUS, prefix: str = "") -> Path:
    path = tmp_path / "status.json"
    path.write_text(prefix + json.dumps(status, indent=2), encoding="utf-8")
    return path


def _no_secret_in(text: str) -> None:
    for secret in SECRETS:
        assert secret not in text


def test_parse_status_reads_the_classic_names() -> None:
    status = parse_status(json.dumps(RECORDED_STATUS))
    assert status.api_url == "http://127.0.0.1:54321"
    assert status.db_url == RECORDED_STATUS["DB_URL"]
    assert status.jwt_secret == RECORDED_STATUS["JWT_SECRET"]
    assert status.anon_key == RECORDED_STATUS["ANON_KEY"]


def test_parse_status_falls_back_to_the_publishable_key_and_skips_a_leading_notice() -> None:
    without_classic = {k: v for k, v in RECORDED_STATUS.items() if k != "ANON_KEY"}
    status = parse_status("A new version of Supabase CLI is available\n" + json.dumps(without_classic))
    assert status.anon_key == RECORDED_STATUS["PUBLISHABLE_KEY"]


@pytest.mark.parametrize("missing", ["API_URL", "DB_URL", "JWT_SECRET"])
def test_parse_status_names_a_missing_key(missing: str) -> None:
    with pytest.raises(BootstrapError, match=f"lacks {missing}"):
        parse_status(json.dumps({k: v for k, v in RECORDED_STATUS.items() if k != missing}))


def test_parse_status_rejects_non_json() -> None:
    with pytest.raises(BootstrapError, match="not JSON"):
        parse_status("{ stack is not running")


def test_writes_a_fresh_env_file_with_mode_0600(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    env_file = tmp_path / "services" / "api" / ".env"
    code = run(
        ["--status-json", str(_status_file(tmp_path)), "--env-file", str(env_file), "--db-user", "postgres"]
    )
    assert code == 0
    assert stat.S_IMODE(env_file.stat().st_mode) == 0o600
    assert dotenv_values(env_file) == {
        "APP_ENV": "development",
        "DATA_BACKEND": "supabase",
        "SUPABASE_URL": "http://127.0.0.1:54321",
        "SUPABASE_ANON_KEY": RECORDED_STATUS["ANON_KEY"],
        "SUPABASE_DB_URL": RECORDED_STATUS["DB_URL"],
        "SUPABASE_JWT_SECRET": RECORDED_STATUS["JWT_SECRET"],
        "SUPABASE_JWT_AUDIENCE": "authenticated",
    }
    text = env_file.read_text()
    assert not any(key in text for key in SERVICE_ROLE_KEYS)
    assert "row-level security is NOT enforced" in text  # the superuser URL is called out
    out = capsys.readouterr()
    assert "added: " + ", ".join(MANAGED_KEYS) in out.out
    _no_secret_in(out.out + out.err)


def test_existing_file_keeps_other_lines_and_reports_changed_keys(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    env_file = tmp_path / ".env"
    env_file.write_text(
        "# my notes: keep me\n"
        "LOG_LEVEL=DEBUG\n"
        "export SUPABASE_URL=http://localhost:9999\n"
        "DATA_BACKEND=supabase\n"
        "\n"
        "INTERNAL_API_TOKEN='a token # with a hash'\n"
    )
    env_file.chmod(0o644)
    args = [
        "--status-json",
        str(_status_file(tmp_path)),
        "--env-file",
        str(env_file),
        "--db-user",
        "postgres",
    ]
    assert run(args) == 0
    lines = env_file.read_text().splitlines()
    # Our comment goes above the first managed key; managed keys are updated where they stand
    # (an `export ` prefix kept); the missing ones are appended after a blank line.
    assert [line for line in lines if not line.startswith("# bootstrap-env:")] == [
        "# my notes: keep me",
        "LOG_LEVEL=DEBUG",
        "export SUPABASE_URL=http://127.0.0.1:54321",
        "DATA_BACKEND=supabase",
        "",
        "INTERNAL_API_TOKEN='a token # with a hash'",
        "",
        "APP_ENV=development",
        f"SUPABASE_ANON_KEY={RECORDED_STATUS['ANON_KEY']}",
        f"SUPABASE_DB_URL={RECORDED_STATUS['DB_URL']}",
        f"SUPABASE_JWT_SECRET={RECORDED_STATUS['JWT_SECRET']}",
        "SUPABASE_JWT_AUDIENCE=authenticated",
    ]
    first_own = next(i for i, line in enumerate(lines) if line.startswith("# bootstrap-env:"))
    assert first_own == 2
    assert lines[first_own + 3] == "export SUPABASE_URL=http://127.0.0.1:54321"
    assert stat.S_IMODE(env_file.stat().st_mode) == 0o600
    values = dotenv_values(env_file)
    assert values["INTERNAL_API_TOKEN"] == "a token # with a hash"
    assert values["SUPABASE_JWT_SECRET"] == RECORDED_STATUS["JWT_SECRET"]
    out = capsys.readouterr().out
    assert "changed: SUPABASE_URL\n" in out
    assert "unchanged: DATA_BACKEND\n" in out

    # A second run changes nothing and does not pile up comment lines.
    before = env_file.read_text()
    assert run(args) == 0
    assert env_file.read_text() == before
    assert "unchanged: " + ", ".join(MANAGED_KEYS) in capsys.readouterr().out


def test_refuses_a_file_for_a_real_deployment_without_force(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    env_file = tmp_path / ".env"
    original = "SUPABASE_URL=https://abcd.supabase.co\n"
    env_file.write_text(original)
    args = [
        "--status-json",
        str(_status_file(tmp_path)),
        "--env-file",
        str(env_file),
        "--db-user",
        "postgres",
    ]
    assert run(args) == 2
    assert "--force" in capsys.readouterr().err
    assert env_file.read_text() == original
    assert run([*args, "--force"]) == 0
    assert dotenv_values(env_file)["SUPABASE_URL"] == "http://127.0.0.1:54321"


def test_missing_key_exits_2_naming_it(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    status = {k: v for k, v in RECORDED_STATUS.items() if k not in ("ANON_KEY", "PUBLISHABLE_KEY")}
    env_file = tmp_path / ".env"
    code = run(["--status-json", str(_status_file(tmp_path, status)), "--env-file", str(env_file)])
    assert code == 2
    err = capsys.readouterr().err
    assert "lacks ANON_KEY or PUBLISHABLE_KEY" in err
    assert not env_file.exists()


def _fake_cli(tmp_path: Path, body: str) -> Path:
    script = tmp_path / "supabase"
    script.write_text(f"#!{sys.executable}\nimport sys, os\n{body}\n")
    script.chmod(0o755)
    return script


def test_cli_failure_exits_2_with_its_stderr(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cli = _fake_cli(
        tmp_path,
        "sys.stderr.write('failed to inspect container: supabase start is not running.\\n')\nsys.exit(1)",
    )
    env_file = tmp_path / ".env"
    assert run(["--supabase-cli", str(cli), "--env-file", str(env_file)]) == 2
    err = capsys.readouterr().err
    assert "failed (exit 1)" in err
    assert "supabase start is not running." in err
    assert not env_file.exists()


def test_cli_found_on_path_is_run_with_telemetry_off(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    body = (
        "assert sys.argv[1:] == ['status', '-o', 'json'], sys.argv\n"
        "assert os.environ.get('SUPABASE_TELEMETRY_DISABLED') == '1'\n"
        f"print({json.dumps(json.dumps(RECORDED_STATUS))})"
    )
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    _fake_cli(bin_dir, body)
    monkeypatch.setenv("PATH", f"{bin_dir}:/usr/bin:/bin")
    monkeypatch.chdir(tmp_path)  # no node_modules/.bin/supabase here: PATH is used
    env_file = tmp_path / ".env"
    assert run(["--env-file", str(env_file), "--db-user", "postgres"]) == 0
    assert dotenv_values(env_file)["SUPABASE_ANON_KEY"] == RECORDED_STATUS["ANON_KEY"]
    out = capsys.readouterr()
    _no_secret_in(out.out + out.err)


def test_missing_cli_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["--supabase-cli", str(tmp_path / "nope"), "--env-file", str(tmp_path / ".env")]) == 2
    assert "Supabase CLI not found" in capsys.readouterr().err


def test_unreachable_database_exits_2_without_the_password(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Port 9 (discard) on loopback: nothing listens there, so the connection is refused at once.
    status = {**RECORDED_STATUS, "DB_URL": "postgresql://postgres:hunter2-db@127.0.0.1:9/postgres"}
    env_file = tmp_path / ".env"
    assert run(["--status-json", str(_status_file(tmp_path, status)), "--env-file", str(env_file)]) == 2
    err = capsys.readouterr().err
    assert "cannot set the botmox_api password through DB_URL" in err
    assert "hunter2-db" not in err
    assert not env_file.exists()


@pytest.mark.parametrize("value", ["plain", "with space", "it's", "back\\slash", "hash #x", 'dq"'])
def test_dotenv_value_round_trips(tmp_path: Path, value: str) -> None:
    path = tmp_path / ".env"
    path.write_text(f"K={dotenv_value(value)}\n")
    assert dotenv_values(path)["K"] == value


def test_with_credentials_keeps_host_database_and_query() -> None:
    url = with_credentials(
        "postgresql://postgres:pw@127.0.0.1:54322/postgres?sslmode=disable", "botmox_api", "a/b"
    )
    assert url == "postgresql://botmox_api:a%2Fb@127.0.0.1:54322/postgres?sslmode=disable"


def test_scram_verifier_has_postgres_shape() -> None:
    verifier = scram_sha256_verifier("pw")
    assert verifier.startswith("SCRAM-SHA-256$4096:")
    assert verifier != scram_sha256_verifier("pw")  # a fresh salt each time


@pytest.mark.integration
def test_botmox_api_gets_a_password_that_logs_in(
    tmp_path: Path, postgres_private: PrivatePostgres, capsys: pytest.CaptureFixture[str]
) -> None:
    # A private cluster: the password change must not touch the shared one other tests log in to.
    database = postgres_private.database
    status = {**RECORDED_STATUS, "DB_URL": database.admin_dsn}
    env_file = tmp_path / ".env"
    assert run(["--status-json", str(_status_file(tmp_path, status)), "--env-file", str(env_file)]) == 0
    db_url = dotenv_values(env_file)["SUPABASE_DB_URL"]
    assert db_url is not None
    assert db_url.startswith("postgresql://botmox_api:")
    with psycopg.connect(db_url, connect_timeout=10) as connection:
        row = connection.execute(
            "select current_user, rolbypassrls from pg_roles where rolname = current_user"
        )
        assert row.fetchone() == ("botmox_api", False)
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(database.api_dsn, connect_timeout=10).close()  # the old password no longer works
    text = env_file.read_text()
    assert "SUPABASE_DB_URL logs in as botmox_api (row-level security applies)" in text
    out = capsys.readouterr()
    assert db_url.split(":")[2].split("@")[0] not in out.out + out.err  # the new password is not printed
