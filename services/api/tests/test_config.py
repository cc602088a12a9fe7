"""Start-up rules: the configuration, and ``python -m botmox_api`` as a process."""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

import httpx
import pytest
from api_fakes import memory_store_set
from api_support import (
    API_TOKEN,
    bearer,
    clean_env,
    client_for,
    make_settings,
    server_process,
    user,
    wait_for,
)

from botmox_api.config import ConfigError, load_settings
from harness.processes import free_port

STRONG = "s" * 32
DB_PASSWORD = "pg-pa55word-never-shown"
PRODUCTION = {"APP_ENV": "production", "INTERNAL_API_TOKEN": STRONG, "INTERNAL_INFRA_TOKEN": STRONG}


@pytest.mark.parametrize(
    ("env", "variable"),
    [
        ({"DATA_BACKEND": "x"}, "DATA_BACKEND='x'"),
        ({"APP_ENV": "staging"}, "APP_ENV='staging'"),
        ({"LOG_FORMAT": "xml"}, "LOG_FORMAT='xml'"),
        ({"PORT": "notaport"}, "PORT='notaport'"),
        ({"API_RATE_LIMIT_MAX": "0"}, "API_RATE_LIMIT_MAX='0'"),
        ({"API_WORKERS": "0"}, "API_WORKERS='0'"),
        ({"API_WORKERS": "65"}, "API_WORKERS='65'"),
        ({"API_WORKERS": "2", "DATA_BACKEND": "x"}, "DATA_BACKEND='x'"),
        ({"APP_ENV": "production", "INTERNAL_INFRA_TOKEN": STRONG}, "INTERNAL_API_TOKEN"),
        (
            {"APP_ENV": "production", "INTERNAL_API_TOKEN": "tiny-tok3n", "INTERNAL_INFRA_TOKEN": STRONG},
            "INTERNAL_API_TOKEN=<redacted>",
        ),
        ({"INTERNAL_API_TOKEN": "tiny-tok3n"}, "INTERNAL_API_TOKEN=<redacted>"),
        (
            {
                "APP_ENV": "production",
                "INTERNAL_API_TOKEN": STRONG,
                "INTERNAL_INFRA_TOKEN": STRONG,
                "FIREBASE_AUTH_EMULATOR_HOST": "127.0.0.1:9099",
            },
            "FIREBASE_AUTH_EMULATOR_HOST",
        ),
        (
            {
                "APP_ENV": "production",
                "INTERNAL_API_TOKEN": STRONG,
                "INTERNAL_INFRA_TOKEN": STRONG,
                "FIREBASE_DATABASE_EMULATOR_HOST": "127.0.0.1:9000",
            },
            "FIREBASE_DATABASE_EMULATOR_HOST",
        ),
        ({"FIREBASE_DATABASE_URL": "ftp://nope"}, "FIREBASE_DATABASE_URL"),
        # Production fails closed: emulator mode, any origin, a database without TLS, a weak JWT secret.
        (
            {**PRODUCTION, "FIREBASE_DATABASE_URL": "http://127.0.0.1:9000?ns=botmox"},
            "FIREBASE_DATABASE_URL='http://127.0.0.1:9000?ns=botmox' is invalid: an http:// URL",
        ),
        ({**PRODUCTION, "CORS_ORIGINS": "https://app.example,*"}, "CORS_ORIGINS='https://app.example,*'"),
        (
            {**PRODUCTION, "SUPABASE_DB_URL": f"postgresql://botmox_api:{DB_PASSWORD}@db.example.com/botmox"},
            "SUPABASE_DB_URL=<redacted> is invalid: connects to db.example.com without TLS",
        ),
        (
            {
                **PRODUCTION,
                "SUPABASE_DB_URL": f"host=db.example.com password={DB_PASSWORD} sslmode=prefer",
            },
            "SUPABASE_DB_URL=<redacted> is invalid: connects to db.example.com without TLS",
        ),
        (
            {**PRODUCTION, "SUPABASE_DB_URL": f"postgresql://botmox_api:{DB_PASSWORD}@[::1/botmox"},
            "SUPABASE_DB_URL=<redacted> is invalid: is not a valid PostgreSQL connection string",
        ),
        ({**PRODUCTION, "SUPABASE_JWT_SECRET": "tiny-tok3n"}, "SUPABASE_JWT_SECRET=<redacted>"),
        ({"FORWARDED_ALLOW_IPS": "10.0.0.1,caddy"}, "FORWARDED_ALLOW_IPS='10.0.0.1,caddy'"),
        # Shadow reads need the other backend: no point counting failures (stores.factory).
        (
            {"STORAGE_POLICY_SHADOW": "on"},
            "STORAGE_POLICY_SHADOW=on with DATA_BACKEND=rtdb compares with Supabase, which is not"
            " configured: set SUPABASE_DB_URL, or SUPABASE_URL, SUPABASE_ANON_KEY and SUPABASE_JWT_SECRET",
        ),
        (
            {
                "STORAGE_POLICY_SHADOW": "on",
                "DATA_BACKEND": "supabase",
                "SUPABASE_DB_URL": f"postgresql://botmox_api:{DB_PASSWORD}@127.0.0.1:9/botmox",
            },
            "compares with RTDB, which is not configured: set FIREBASE_DATABASE_URL or FIREBASE_PROJECT_ID",
        ),
        ({"STORAGE_POLICY_SHADOW_QUEUE": "0"}, "STORAGE_POLICY_SHADOW_QUEUE='0'"),
        ({"STORAGE_POLICY_SHADOW_WORKERS": "65"}, "STORAGE_POLICY_SHADOW_WORKERS='65'"),
        ({"STORAGE_POLICY_SHADOW_RATE": "0"}, "STORAGE_POLICY_SHADOW_RATE='0'"),
    ],
)
def test_invalid_configuration_exits_2_with_one_line(
    tmp_path: Path, env: dict[str, str], variable: str
) -> None:
    with server_process(clean_env(**env), tmp_path) as process:
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            pytest.fail("the server started despite an invalid configuration")
        assert process.stderr is not None
        stderr = process.stderr.read()
    assert process.returncode == 2
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert variable in lines[0]
    assert "tiny-tok3n" not in lines[0]
    assert STRONG not in lines[0]
    assert DB_PASSWORD not in lines[0]


def test_production_accepts_what_it_requires() -> None:
    settings = make_settings(
        app_env="production",
        firebase_database_url="https://bot-mox.firebaseio.com",
        cors_origins="https://app.example",
        supabase_jwt_secret="j" * 32,
        supabase_db_url=f"postgresql://botmox_api:{DB_PASSWORD}@db.example.com/botmox?sslmode=verify-full",
        forwarded_allow_ips="127.0.0.1, 10.0.0.0/8 ,::1",
    )
    assert [str(n) for n in settings.forwarded_allow_ips] == ["127.0.0.1/32", "10.0.0.0/8", "::1/128"]
    for local in (
        "postgresql://botmox_api:pw@127.0.0.1:54322/botmox?sslmode=disable",
        "postgresql://botmox_api:pw@localhost/botmox",
        "host=/var/run/postgresql dbname=botmox",
        "postgresql://botmox_api:pw@[::1]:5432/botmox",
    ):
        assert make_settings(app_env="production", supabase_db_url=local).secret("supabase_db_url") == local
    for sslmode in ("require", "verify-ca", "verify-full"):
        make_settings(app_env="production", supabase_db_url=f"host=db.example.com sslmode={sslmode}")
    # Development keeps the emulator, any origin, short secrets and local databases without TLS.
    development = make_settings(
        firebase_database_url="http://127.0.0.1:9000?ns=x",
        cors_origins="*",
        supabase_jwt_secret="short",
        supabase_db_url="postgresql://u:p@db.example.com/x",
    )
    assert development.cors_origins == ("*",)


def test_shadow_reads_are_off_unless_turned_on() -> None:
    assert make_settings().storage_policy_shadow is False
    settings = make_settings(storage_policy_shadow="on", data_backend="supabase")
    assert (settings.storage_policy_shadow, settings.storage_policy_shadow_queue) == (True, 1000)
    assert (settings.storage_policy_shadow_workers, settings.storage_policy_shadow_rate) == (4, 100)
    assert make_settings(storage_policy_shadow="off").storage_policy_shadow is False


def test_weak_token_allowed_in_development_when_asked() -> None:
    settings = make_settings(internal_api_token="short", allow_insecure_dev_tokens=True)
    assert settings.secret("internal_api_token") == "short"
    with pytest.raises(ValueError, match="ALLOW_INSECURE_DEV_TOKENS"):
        make_settings(app_env="production", allow_insecure_dev_tokens=True)


def test_dotenv_is_read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("DATA_BACKEND", "PORT"):
        monkeypatch.delenv(name, raising=False)
    env_file = tmp_path / ".env"
    env_file.write_text(
        "DATA_BACKEND=supabase\nPORT=9123\nCORS_ORIGINS=https://A.example, https://b.example\n"
    )
    settings = load_settings(str(env_file))
    assert (settings.data_backend, settings.port) == ("supabase", 9123)
    assert settings.cors_origins == ("https://a.example", "https://b.example")
    env_file.write_text("DATA_BACKEND=nope\n")
    with pytest.raises(ConfigError, match="DATA_BACKEND='nope'"):
        load_settings(str(env_file))


@pytest.mark.slow
def test_supabase_mode_without_settings_starts_and_warns_once(tmp_path: Path) -> None:
    port = free_port()
    env = clean_env(DATA_BACKEND="supabase", PORT=str(port), INTERNAL_API_TOKEN=API_TOKEN, LOG_FORMAT="json")
    with server_process(env, tmp_path) as process:
        base = f"http://127.0.0.1:{port}/api/v1"
        assert wait_for(f"{base}/health/live", process).status_code == 200
        response = httpx.get(f"{base}/settings/storage_policy", headers=bearer(API_TOKEN), timeout=5)
        assert response.status_code == 503
        assert response.json()["error"]["code"] == "SUPABASE_CONFIG_ERROR"
        assert "SUPABASE_DB_URL" in response.json()["error"]["details"]["missing"]
        generic = httpx.get(f"{base}/settings/alerts", headers=bearer(API_TOKEN), timeout=5)
        assert generic.json()["error"]["code"] == "RTDB_CONFIG_ERROR"  # no RTDB configured here either
        os.kill(process.pid, signal.SIGTERM)
        process.wait(timeout=10)
        assert process.stdout is not None
        output = process.stdout.read()
    assert output.count("supabase_not_configured") == 1
    assert API_TOKEN not in output


async def test_supabase_mode_unconfigured_keeps_rtdb_paths() -> None:
    from botmox_api.model import StoreNotConfigured

    stores = memory_store_set(supabase_configured=False)
    stores.storage_policy.failure = StoreNotConfigured(
        "supabase", "Supabase is not configured", details={"missing": ["SUPABASE_DB_URL"]}
    )
    async with client_for(make_settings(data_backend="supabase"), stores) as client:
        assert (await client.get("/api/v1/settings/storage_policy", headers=user())).status_code == 503
        assert (await client.put("/api/v1/settings/alerts", headers=user(), json={"a": 1})).status_code == 200
