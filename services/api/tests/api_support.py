"""Helpers shared by the API tests: settings, tokens, clients."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator, Mapping
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any, Final

import httpx
import jwt
import pytest
from fastapi import FastAPI

from botmox_api.app import create_app
from botmox_api.config import ApiSettings
from botmox_api.stores.protocols import StoreSet
from harness import processes

API_TOKEN: Final = "api-token-" + "a" * 32
INFRA_TOKEN: Final = "infra-token-" + "b" * 32
JWT_SECRET: Final = "jwt-secret-" + "c" * 32
BASE_URL: Final = "http://api.test"
ORIGIN: Final = "http://localhost:5173"
# ``supabase`` mode over the REST transport (see conftest.py); suites opt in with REST_MODES.
REST_MODE: Final = "supabase-rest"
REST_MODES: Final = ("rtdb", "supabase", REST_MODE)


def make_settings(**overrides: Any) -> ApiSettings:
    values: dict[str, Any] = {
        "internal_api_token": API_TOKEN,
        "internal_infra_token": INFRA_TOKEN,
        "supabase_jwt_secret": JWT_SECRET,
        "cors_origins": ORIGIN,
    }
    values.update(overrides)
    return ApiSettings(_env_file=None, **values)  # type: ignore[call-arg]


def supabase_token(
    tenant: object = "tenant-a",
    *,
    sub: str = "user-1",
    secret: str = JWT_SECRET,
    lifetime_s: int = 3600,
    extra: Mapping[str, object] | None = None,
    app_metadata: Mapping[str, object] | None = None,
    algorithm: str = "HS256",
) -> str:
    now = int(time.time())
    claims: dict[str, object] = {
        "sub": sub,
        "aud": "authenticated",
        "exp": now + lifetime_s,
        "iat": now,
        "email": f"{sub}@example.com",
    }
    metadata = dict(app_metadata or {})
    if tenant is not None:
        metadata.setdefault("tenant_id", tenant)
    claims["app_metadata"] = metadata
    claims.update(extra or {})
    return jwt.encode(claims, secret, algorithm=algorithm)


def unsigned_token(claims: Mapping[str, object]) -> str:
    """A JWT with ``alg: none`` and no signature (the Firebase Auth emulator's kind)."""

    def part(value: Mapping[str, object]) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()

    return f"{part({'alg': 'none', 'typ': 'JWT'})}.{part(claims)}."


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def user(tenant: str = "tenant-a", sub: str = "user-1") -> dict[str, str]:
    return bearer(supabase_token(tenant, sub=sub))


@asynccontextmanager
async def running(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE_URL) as client,
    ):
        yield client


@asynccontextmanager
async def client_for(
    settings: ApiSettings, stores: StoreSet | None = None, **kwargs: Any
) -> AsyncIterator[httpx.AsyncClient]:
    async with running(create_app(settings, stores=stores, **kwargs)) as client:
        yield client


def error_code(response: httpx.Response) -> str:
    body = response.json()
    assert body["success"] is False, body
    return str(body["error"]["code"])


def data(response: httpx.Response) -> Any:
    body = response.json()
    assert body["success"] is True, body
    return body["data"]


# `python -m botmox_api` as a process, for start-up and logging tests.


def clean_env(**values: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("SUPABASE_", "FIREBASE_", "INTERNAL_", "API_", "STORAGE_POLICY_"))
    }
    for name in (
        "DATA_BACKEND",
        "APP_ENV",
        "PORT",
        "LOG_LEVEL",
        "LOG_FORMAT",
        "GOOGLE_APPLICATION_CREDENTIALS",
        "CORS_ORIGINS",
        "DEFAULT_TENANT_ID",
        "ALLOW_INSECURE_DEV_TOKENS",
        "FORWARDED_ALLOW_IPS",
    ):
        env.pop(name, None)
    env.update(values)
    return env


@contextmanager
def server_process(env: dict[str, str], cwd: Path) -> Iterator[subprocess.Popen[str]]:
    process = subprocess.Popen(
        [sys.executable, "-m", "botmox_api"],
        env=env,
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        yield process
    finally:
        processes.stop_child(process, ladder=processes.terminate(10), whole_group=False)
        for stream in (process.stdout, process.stderr):
            if stream:
                stream.close()


def wait_for(url: str, process: subprocess.Popen[str]) -> httpx.Response:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        assert process.poll() is None, "server exited"
        try:
            return httpx.get(url, timeout=2)
        except httpx.TransportError:
            time.sleep(0.1)
    pytest.fail("server did not start")
