"""The demo bearer token and the frontend's static server."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import jwt
import pytest

from harness.stack.static_server import create_app
from harness.stack.tokens import demo_token


def test_demo_token_is_a_supabase_style_hs256_jwt() -> None:
    token = demo_token(secret="s" * 48, audience="authenticated", now=1_000_000)
    header = jwt.get_unverified_header(token)
    assert header["alg"] == "HS256"
    claims = jwt.decode(
        token, "s" * 48, algorithms=["HS256"], audience="authenticated", options={"verify_exp": False}
    )
    assert claims["exp"] - claims["iat"] == 12 * 3600
    assert claims["app_metadata"] == {"tenant_id": "demo", "roles": ["api"]}
    assert claims["sub"]
    assert claims["email"] == "demo@botmox.local"
    assert "iss" not in claims
    with pytest.raises(jwt.InvalidSignatureError):
        jwt.decode(token, "t" * 48, algorithms=["HS256"], audience="authenticated")


def test_demo_token_carries_the_issuer_when_one_is_checked() -> None:
    token = demo_token(secret="s" * 48, audience="authenticated", issuer="http://127.0.0.1/auth/v1")
    claims = jwt.decode(
        token, "s" * 48, algorithms=["HS256"], audience="authenticated", issuer="http://127.0.0.1/auth/v1"
    )
    assert claims["iss"] == "http://127.0.0.1/auth/v1"


async def test_static_server_serves_files_and_the_runtime_config(tmp_path: Path) -> None:
    (tmp_path / "index.html").write_text("<h1>settings</h1>")
    app = create_app(tmp_path, "http://127.0.0.1:18000")
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as client:
        config = await client.get("/runtime-config.js")
        assert config.status_code == 200
        assert config.headers["content-type"].startswith("application/javascript")
        assert config.headers["cache-control"] == "no-store"
        assert config.text == (
            'window.__BOTMOX_CONFIG__ = {"apiBaseUrl": "http://127.0.0.1:18000", "token": null};\n'
        )
        index = await client.get("/")
        assert index.status_code == 200
        assert "settings" in index.text
        assert index.headers["cache-control"] == "no-cache"
        assert (await client.get("/nope.js")).status_code == 404


async def test_runtime_config_carries_the_demo_token_as_a_safe_literal(tmp_path: Path) -> None:
    app = create_app(tmp_path, 'http://x/"</script>', token="abc.def")
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as client:
        script = (await client.get("/runtime-config.js")).text
    prefix = "window.__BOTMOX_CONFIG__ = "
    assert script.startswith(prefix)
    assert json.loads(script.removeprefix(prefix).rstrip(";\n")) == {
        "apiBaseUrl": 'http://x/"</script>',
        "token": "abc.def",
    }


async def test_static_server_without_files_still_serves_the_config(tmp_path: Path) -> None:
    app = create_app(tmp_path / "missing", "http://127.0.0.1:1")
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as client:
        assert (await client.get("/runtime-config.js")).status_code == 200
        missing = await client.get("/")
        assert missing.status_code == 404
        assert "no frontend files" in missing.text
