"""The frontend image's moving parts without Docker: entrypoint.sh (runtime-config.js) and the Caddyfile.

The Caddy test runs Debian's ``caddy`` package with the image's Caddyfile, the way the harness's native
runtime can; it is skipped when ``caddy`` is not installed (``apt-get install -y caddy``), and fails
then in CI (``harness.fixtures.tools``).
"""

from __future__ import annotations

import json
import re
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from harness import processes
from harness.fixtures.tools import require_tool

FRONTEND = Path(__file__).resolve().parents[1]
ENTRYPOINT = FRONTEND / "entrypoint.sh"
CONFIG_LINE = re.compile(r"^window\.__BOTMOX_CONFIG__ = (\{.*\});$", re.MULTILINE)


def run_entrypoint(runtime_dir: Path, *command: str, **variables: str) -> subprocess.CompletedProcess[str]:
    environment = {"PATH": "/usr/bin:/bin", "FRONTEND_RUNTIME_DIR": str(runtime_dir), **variables}
    return subprocess.run(
        ["sh", str(ENTRYPOINT), *(command or ("true",))],
        env=environment,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def runtime_config(runtime_dir: Path) -> object:
    match = CONFIG_LINE.search((runtime_dir / "runtime-config.js").read_text())
    assert match is not None
    return json.loads(match.group(1))


def test_entrypoint_writes_the_api_url_and_no_token_by_default(tmp_path: Path) -> None:
    result = run_entrypoint(tmp_path, API_BASE_URL="http://127.0.0.1:8000")
    assert result.returncode == 0, result.stderr
    assert runtime_config(tmp_path) == {"apiBaseUrl": "http://127.0.0.1:8000", "token": None}
    assert [p.name for p in tmp_path.iterdir()] == ["runtime-config.js"]


def test_entrypoint_writes_an_empty_url_for_same_origin_and_the_demo_token(tmp_path: Path) -> None:
    result = run_entrypoint(tmp_path, FRONTEND_DEMO_TOKEN="eyJhbGciOi.eyJzdWIiOi.sig-_=")
    assert result.returncode == 0, result.stderr
    assert runtime_config(tmp_path) == {"apiBaseUrl": "", "token": "eyJhbGciOi.eyJzdWIiOi.sig-_="}


@pytest.mark.parametrize(
    "variables",
    [
        {"API_BASE_URL": 'http://127.0.0.1:8000/"; alert(1); "'},
        {"API_BASE_URL": "http://127.0.0.1:8000/a b"},
        {"API_BASE_URL": "http://127.0.0.1:8000\nalert(1)"},
        {"API_BASE_URL": "ftp://127.0.0.1"},
        {"API_BASE_URL": "127.0.0.1:8000"},
        {"API_BASE_URL": "http://127.0.0.1:8000", "FRONTEND_DEMO_TOKEN": 'abc"def'},
        {"API_BASE_URL": "http://127.0.0.1:8000", "FRONTEND_DEMO_TOKEN": "abc\ndef"},
    ],
)
def test_entrypoint_refuses_values_that_would_need_escaping(
    tmp_path: Path, variables: dict[str, str]
) -> None:
    marker = tmp_path / "server-started"
    result = run_entrypoint(tmp_path, "touch", str(marker), **variables)
    assert result.returncode == 64
    assert "entrypoint:" in result.stderr
    assert not (tmp_path / "runtime-config.js").exists()
    assert not marker.exists()


def test_entrypoint_hands_over_to_the_command(tmp_path: Path) -> None:
    result = run_entrypoint(tmp_path, "sh", "-c", 'cat "$FRONTEND_RUNTIME_DIR/runtime-config.js"; exit 7')
    assert result.returncode == 7
    assert "window.__BOTMOX_CONFIG__" in result.stdout


def test_every_file_the_dockerfile_copies_is_in_its_context() -> None:
    dockerfile = (FRONTEND / "Dockerfile").read_text()
    assert re.search(r"^ARG BASE_IMAGE=\S+", dockerfile, re.MULTILINE)
    sources = [line.split()[1] for line in dockerfile.splitlines() if line.startswith("COPY ")]
    assert sources
    for source in sources:
        assert (FRONTEND / source).exists(), source


@pytest.fixture
def caddy_site(tmp_path: Path) -> Iterator[str]:
    caddy = require_tool("caddy", "apt-get install -y caddy")
    port = processes.free_port()
    environment = {
        "PATH": "/usr/bin:/bin",
        "API_BASE_URL": "http://127.0.0.1:9999",
        "STATIC_ROOT": str(FRONTEND / "public"),
        "FRONTEND_RUNTIME_DIR": str(tmp_path / "runtime"),
        "HOST": "127.0.0.1",
        "PORT": str(port),
        "XDG_CONFIG_HOME": str(tmp_path / "config"),
        "XDG_DATA_HOME": str(tmp_path / "data"),
    }
    command = [
        "sh",
        str(ENTRYPOINT),
        caddy,
        "run",
        "--config",
        str(FRONTEND / "Caddyfile"),
        "--adapter",
        "caddyfile",
    ]
    with (tmp_path / "caddy.log").open("wb") as log:
        process = subprocess.Popen(
            command, env=environment, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 15
        while True:
            assert process.poll() is None, (tmp_path / "caddy.log").read_text()
            try:
                httpx.get(f"{url}/", timeout=1, trust_env=False)
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline, "caddy did not answer in 15 s"
                time.sleep(0.05)
        yield url
    finally:
        processes.stop_child(process, ladder=processes.terminate(10))


def test_caddy_serves_the_page_and_an_uncached_runtime_config(caddy_site: str) -> None:
    with httpx.Client(base_url=caddy_site, trust_env=False, timeout=5) as client:
        index = client.get("/")
        assert index.status_code == 200
        assert index.headers["content-type"].startswith("text/html")
        assert 'src="/runtime-config.js"' in index.text

        config = client.get("/runtime-config.js")
        assert config.status_code == 200
        assert config.headers["cache-control"] == "no-store"
        assert '"apiBaseUrl": "http://127.0.0.1:9999"' in config.text

        for asset, media_type in (("/app.js", "text/javascript"), ("/styles.css", "text/css")):
            response = client.get(asset)
            assert response.status_code == 200
            assert response.headers["content-type"].startswith(media_type)

        assert client.get("/Caddyfile").status_code == 404
