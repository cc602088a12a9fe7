"""The settings page in headless Chromium, against a fake of the settings API.

The scenarios use three fixtures only: ``settings_api`` (base URL + bearer token of an API whose
settings work), ``misconfigured_settings_api`` (the same API with ``storage_policy`` answering
``SUPABASE_CONFIG_ERROR``) and ``frontend_url`` (the page, configured to call that API). Here they
are backed by a fake API and a static server started by the test; the acceptance suite overrides
the three with the stack the harness brings up. The scenarios that hold against any API live in
``harness.settings_page`` (shared with ``harness/tests/acceptance``); the ones that need the fake
(an empty tenant, recorded requests, injected failures) stay here.

The fake is a bare ASGI app (no framework) that implements only what the page calls, in the
envelope of docs/api.md, with CORS for the page's origin, so the page runs cross-origin as it
does in the stack.
"""

from __future__ import annotations

import json
import re
import secrets
import shutil
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from playwright.sync_api import Page, expect

from harness import processes
from harness.settings_page import (
    AGENTS,
    ALERTS,
    STORAGE_POLICY,
    SettingsApi,
    agents_render_from_the_api,
    api_client,
    expect_policy,
    misconfigured_policy_shows_the_error_while_alerts_work,
    open_with_token,
    policy_round_trips_through_the_page,
    settle,
)

REPOSITORY = Path(__file__).resolve().parents[3]
FRONTEND = REPOSITORY / "services" / "frontend"

# ASGI messages are heterogeneous dicts by definition.
AsgiMessage = dict[str, Any]
Receive = Callable[[], Awaitable[AsgiMessage]]
Send = Callable[[AsgiMessage], Awaitable[None]]


# --- the fake settings API ----------------------------------------------------------------------


@dataclass(frozen=True)
class Failure:
    """An error the fake answers on ``storage_policy`` for the given methods."""

    status: int
    code: str
    message: str
    methods: frozenset[str] = frozenset({"GET", "PUT", "PATCH"})
    details: object = None


SUPABASE_NOT_CONFIGURED = Failure(
    503,
    "SUPABASE_CONFIG_ERROR",
    "Supabase is not configured",
    details={"missing": ["SUPABASE_URL", "SUPABASE_SERVICE_ROLE_KEY"]},
)


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


Reply = tuple[int, dict[str, object] | None, dict[str, str]]


def _ok(data: object, status: int = 200) -> Reply:
    return status, {"success": True, "data": data}, {}


def _error(status: int, code: str, message: str, details: object = None) -> Reply:
    return status, {"success": False, "error": {"code": code, "message": message, "details": details}}, {}


@dataclass
class FakeSettingsApp:
    """GET/PUT ``storage_policy`` and GET/PUT/PATCH ``alerts`` for one tenant, as the real API answers."""

    token: str
    allowed_origins: frozenset[str]
    storage_policy: dict[str, object] | None = None
    alerts: dict[str, object] | None = None
    # GET /api/v1/agents answers these (the API's list items).
    agents: list[dict[str, object]] = field(default_factory=list)
    agents_failure: Failure | None = None
    failure: Failure | None = None
    requests: list[RecordedRequest] = field(default_factory=list)

    async def __call__(self, scope: AsgiMessage, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body", False):
                break
        headers = {
            name.decode("latin-1").lower(): value.decode("latin-1") for name, value in scope["headers"]
        }
        request = RecordedRequest(scope["method"], scope["path"], headers, body)
        self.requests.append(request)
        status, envelope, extra = self._handle(request)
        origin = headers.get("origin")
        if origin in self.allowed_origins:
            extra |= {"access-control-allow-origin": origin, "access-control-expose-headers": "ETag"}
        payload = json.dumps(envelope).encode() if envelope is not None else b""
        response_headers = [(b"vary", b"Origin")] + [(k.encode(), v.encode()) for k, v in extra.items()]
        if envelope is not None:
            response_headers.append((b"content-type", b"application/json"))
        await send({"type": "http.response.start", "status": status, "headers": response_headers})
        await send({"type": "http.response.body", "body": payload})

    def _handle(self, request: RecordedRequest) -> Reply:
        if request.method == "OPTIONS" and "access-control-request-method" in request.headers:
            return self._preflight(request.headers.get("origin"))
        authorization = re.fullmatch(r"(?i)bearer\s+(\S+)", request.headers.get("authorization", "").strip())
        if authorization is None:
            return _error(401, "UNAUTHORIZED", "Bearer token is required")
        if not secrets.compare_digest(authorization.group(1), self.token):
            return _error(401, "UNAUTHORIZED", "Invalid or expired token")
        if request.path == STORAGE_POLICY:
            return self._storage_policy(request)
        if request.path == ALERTS:
            return self._alerts(request)
        if request.path == AGENTS and request.method == "GET":
            failure = self.agents_failure
            if failure is not None:
                return _error(failure.status, failure.code, failure.message, failure.details)
            return _ok(self.agents)
        return _error(404, "NOT_FOUND", f"Unknown API v1 endpoint: {request.method} {request.path}")

    def _preflight(self, origin: str | None) -> Reply:
        if origin not in self.allowed_origins:
            return _error(403, "FORBIDDEN", "Origin not allowed")
        return (
            204,
            None,
            {
                "access-control-allow-methods": "GET, POST, PUT, PATCH, DELETE, OPTIONS",
                "access-control-allow-headers": "Authorization, Content-Type, If-Match, x-correlation-id",
            },
        )

    @staticmethod
    def _json_body(request: RecordedRequest) -> object | Reply:
        media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if media_type != "application/json":
            return _error(415, "UNSUPPORTED_MEDIA_TYPE", "Content-Type must be application/json")
        try:
            body: object = json.loads(request.body)
        except ValueError:
            return _error(400, "BAD_REQUEST", "Malformed JSON body")
        if not isinstance(body, dict):
            return _error(400, "BAD_REQUEST", "Invalid request body")
        return body

    def _storage_policy(self, request: RecordedRequest) -> Reply:
        if request.method not in ("GET", "PUT", "PATCH"):
            return _error(405, "METHOD_NOT_ALLOWED", f"Method {request.method} not allowed")
        if self.failure is not None and request.method in self.failure.methods:
            return _error(self.failure.status, self.failure.code, self.failure.message, self.failure.details)
        if request.method == "GET":
            return _ok(self.storage_policy)
        body = self._json_body(request)
        if isinstance(body, tuple):
            return body
        assert isinstance(body, dict)
        base: dict[str, object] = dict(self.storage_policy or {}) if request.method == "PATCH" else {}
        sync = body.get("sync", base.get("sync", {"enabled": False}))
        document = {
            "secrets": body.get("secrets", "local-only"),
            "operational": body.get("operational", base.get("operational", "cloud")),
            "sync": {"enabled": sync.get("enabled") if isinstance(sync, dict) else sync},
        }
        if (
            document["secrets"] != "local-only"
            or document["operational"] not in ("local", "cloud")
            or not isinstance(document["sync"]["enabled"], bool)
        ):
            return _error(400, "BAD_REQUEST", "Invalid request body")
        self.storage_policy = document | {"updated_at": int(time.time() * 1000), "updated_by": "fake-user"}
        return _ok(self.storage_policy)

    def _alerts(self, request: RecordedRequest) -> Reply:
        if request.method == "GET":
            return _ok(self.alerts)
        if request.method not in ("PUT", "PATCH"):
            return _error(405, "METHOD_NOT_ALLOWED", f"Method {request.method} not allowed")
        body = self._json_body(request)
        if isinstance(body, tuple):
            return body
        assert isinstance(body, dict)
        days = body.get("warning_days")
        if "warning_days" in body and (
            isinstance(days, bool)
            or not isinstance(days, int | float)
            or days != int(days)
            or not 1 <= days <= 365
        ):
            return _error(
                400, "BAD_REQUEST", "Invalid request body", {"fieldErrors": {"warning_days": ["1..365"]}}
            )
        self.alerts = (self.alerts or {}) | body | {"updated_at": int(time.time() * 1000)}
        return _ok(self.alerts)


class ThreadedUvicorn:
    """Uvicorn serving an ASGI app on 127.0.0.1 from a thread of this process (no PID to leak)."""

    def __init__(self, app: FakeSettingsApp) -> None:
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._socket.bind(("127.0.0.1", 0))
        self.base_url = f"http://127.0.0.1:{self._socket.getsockname()[1]}"
        config = uvicorn.Config(
            app, lifespan="off", ws="none", http="h11", log_config=None, log_level="warning", access_log=False
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [self._socket]}, daemon=True
        )

    def start(self) -> None:
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("the fake settings API did not start")
            time.sleep(0.01)

    def stop(self) -> None:
        self._server.should_exit = True
        if self._thread.is_alive():
            self._thread.join(timeout=10)
        self._socket.close()


# --- the page, served the way the image serves it -----------------------------------------------


class _SiteHandler(SimpleHTTPRequestHandler):
    def end_headers(self) -> None:
        # runtime-config.js changes between tests on the same origin: never let Chromium cache it.
        self.send_header("Cache-Control", "no-store")
        super().end_headers()

    def log_message(self, format: str, *args: object) -> None:
        """Quiet: the test reports what the page shows."""


class FrontendSite:
    """A copy of ``public/`` on a static server; runtime-config.js written by the image's entrypoint."""

    def __init__(self, root: Path) -> None:
        shutil.copytree(FRONTEND / "public", root)
        self._root = root
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), partial(_SiteHandler, directory=str(root)))
        self._server.daemon_threads = True
        self.origin = f"http://127.0.0.1:{self._server.server_address[1]}"
        self.url = f"{self.origin}/"
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.1})

    def write_runtime_config(self, api_base_url: str, demo_token: str = "") -> None:
        environment = {
            "PATH": "/usr/bin:/bin",
            "API_BASE_URL": api_base_url,
            "FRONTEND_DEMO_TOKEN": demo_token,
            "FRONTEND_RUNTIME_DIR": str(self._root),
        }
        subprocess.run(
            ["sh", str(FRONTEND / "entrypoint.sh"), "true"], env=environment, check=True, timeout=30
        )

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        if self._thread.is_alive():
            self._server.shutdown()
            self._thread.join(timeout=10)
        self._server.server_close()


# --- fixtures ------------------------------------------------------------------------------------


@pytest.fixture
def frontend_site(tmp_path: Path) -> Iterator[FrontendSite]:
    site = FrontendSite(tmp_path / "site")
    site.start()
    try:
        yield site
    finally:
        site.stop()


@pytest.fixture
def fake_api(frontend_site: FrontendSite) -> Iterator[tuple[FakeSettingsApp, str]]:
    app = FakeSettingsApp(token=secrets.token_urlsafe(24), allowed_origins=frozenset({frontend_site.origin}))
    server = ThreadedUvicorn(app)
    server.start()
    try:
        frontend_site.write_runtime_config(server.base_url)
        yield app, server.base_url
    finally:
        server.stop()


@pytest.fixture
def settings_api(fake_api: tuple[FakeSettingsApp, str]) -> SettingsApi:
    app, base_url = fake_api
    return SettingsApi(base_url, app.token)


@pytest.fixture
def misconfigured_settings_api(fake_api: tuple[FakeSettingsApp, str]) -> SettingsApi:
    app, base_url = fake_api
    app.failure = SUPABASE_NOT_CONFIGURED
    return SettingsApi(base_url, app.token)


@pytest.fixture
def frontend_url(frontend_site: FrontendSite, fake_api: tuple[FakeSettingsApp, str]) -> str:
    return frontend_site.url


# --- helpers -------------------------------------------------------------------------------------


def stored_policy(app: FakeSettingsApp) -> dict[str, object] | None:
    # A function, not the attribute, so that mypy does not carry a narrowing across page actions.
    return app.storage_policy


# --- scenarios that hold against any settings API --------------------------------------------------


def test_policy_round_trips_through_the_page(
    page: Page, settings_api: SettingsApi, frontend_url: str
) -> None:
    policy_round_trips_through_the_page(page, settings_api, frontend_url)


def test_misconfigured_storage_policy_shows_the_error_while_alerts_work(
    page: Page, misconfigured_settings_api: SettingsApi, frontend_url: str
) -> None:
    misconfigured_policy_shows_the_error_while_alerts_work(page, misconfigured_settings_api, frontend_url)


# --- scenarios that need the fake (an empty tenant, recorded requests, injected failures) ---------


def _agent(
    name: str, *, online: bool, last_seen_at: str | None, revoked_at: str | None = None
) -> dict[str, object]:
    return {
        "id": str(uuid.uuid5(uuid.NAMESPACE_URL, name)),
        "name": name,
        "version": "0.1.0",
        "capabilities": ["syncthing.status"],
        "created_by": "internal-infra",
        "created_at": "2026-12-06T09:00:00Z",
        "last_seen_at": last_seen_at,
        "revoked_at": revoked_at,
        "online": online,
    }


def test_the_agents_list_renders_from_the_api_and_updates_on_reload(
    page: Page, fake_api: tuple[FakeSettingsApp, str], settings_api: SettingsApi, frontend_url: str
) -> None:
    app, _ = fake_api
    app.agents = [
        _agent("pve-gateway", online=True, last_seen_at="2026-12-06T09:41:28Z"),
        _agent("<b>office</b>", online=False, last_seen_at=None),
        _agent(
            "retired", online=False, last_seen_at="2026-12-01T10:00:00Z", revoked_at="2026-12-02T10:00:00Z"
        ),
    ]
    agents_render_from_the_api(page, settings_api, frontend_url)
    expect(page.get_by_test_id("agents-message")).to_have_text("3 agent(s), 1 online")
    # A name is text, never markup.
    expect(page.locator("[data-testid=agent-name] b")).to_have_count(0)

    # The list is what the API says at load time: a reload shows an agent going offline.
    app.agents = [_agent("pve-gateway", online=False, last_seen_at="2026-12-06T09:42:00Z")]
    page.reload()
    settle(page)
    expect(page.get_by_test_id("agent-row")).to_have_count(1)
    expect(page.get_by_test_id("agent-state")).to_have_text("offline")
    assert any(r.path == AGENTS and "origin" in r.headers for r in app.requests)


def test_no_agent_yet_says_so(page: Page, settings_api: SettingsApi, frontend_url: str) -> None:
    agents_render_from_the_api(page, settings_api, frontend_url)
    expect(page.get_by_test_id("agents-empty")).to_have_text(re.compile("No agent is paired"))


def test_agents_that_fail_to_load_show_the_error_and_the_settings_still_work(
    page: Page, fake_api: tuple[FakeSettingsApp, str], settings_api: SettingsApi, frontend_url: str
) -> None:
    app, _ = fake_api
    app.agents_failure = SUPABASE_NOT_CONFIGURED
    open_with_token(page, frontend_url, settings_api.token)
    expect(page.get_by_test_id("agents")).to_have_attribute("data-state", "load-error")
    expect(page.get_by_test_id("agents-error-code")).to_have_text("SUPABASE_CONFIG_ERROR")
    expect(page.get_by_test_id("agents-empty")).to_be_hidden()
    expect(page.get_by_test_id("storage-policy")).to_have_attribute("data-state", "ready")


def test_nothing_stored_shows_the_defaults(page: Page, settings_api: SettingsApi, frontend_url: str) -> None:
    open_with_token(page, frontend_url, settings_api.token)
    expect(page.get_by_test_id("storage-policy")).to_have_attribute("data-state", "ready")
    expect_policy(page, "cloud", sync_enabled=False)
    expect(page.get_by_test_id("storage-policy-updated")).to_have_text(re.compile("Not saved yet"))
    expect(page.get_by_test_id("warning-days")).to_have_value("")


def test_save_puts_the_loaded_document_merged_with_the_edits(
    page: Page, fake_api: tuple[FakeSettingsApp, str], settings_api: SettingsApi, frontend_url: str
) -> None:
    app, _ = fake_api
    with api_client(settings_api) as client:
        seeded = client.put(STORAGE_POLICY, json={"operational": "cloud", "sync": {"enabled": True}})
    loaded = seeded.json()["data"]
    open_with_token(page, frontend_url, settings_api.token)
    expect_policy(page, "cloud", sync_enabled=True)

    page.get_by_label("Local (this machine)").check()
    page.get_by_role("button", name="Save storage policy").click()
    expect(page.get_by_test_id("storage-policy-message")).to_have_text("Storage policy saved")

    from_page = [r for r in app.requests if r.method == "PUT" and "origin" in r.headers]
    assert len(from_page) == 1
    put = from_page[0]
    assert put.path == STORAGE_POLICY
    assert put.headers["content-type"] == "application/json"
    assert put.headers["authorization"] == f"Bearer {settings_api.token}"
    # The whole loaded object (server fields included, which the API ignores) with the edit merged in.
    assert json.loads(put.body) == loaded | {"operational": "local"}


def test_failed_save_keeps_the_edits_and_a_retry_succeeds(
    page: Page, fake_api: tuple[FakeSettingsApp, str], settings_api: SettingsApi, frontend_url: str
) -> None:
    app, _ = fake_api
    open_with_token(page, frontend_url, settings_api.token)
    app.failure = Failure(
        502, "SUPABASE_QUERY_FAILED", "Failed to write storage policy to Supabase", methods=frozenset({"PUT"})
    )
    page.get_by_label("Sync between local and cloud").check()
    page.get_by_role("button", name="Save storage policy").click()

    expect(page.get_by_test_id("storage-policy-message")).to_have_text("Failed to save storage policy")
    expect(page.get_by_test_id("storage-policy-error-code")).to_have_text("SUPABASE_QUERY_FAILED")
    expect(page.get_by_test_id("storage-policy-error-message")).to_have_text(
        "Failed to write storage policy to Supabase"
    )
    expect(page.get_by_test_id("sync-enabled")).to_be_checked()
    assert stored_policy(app) is None

    app.failure = None
    page.get_by_role("button", name="Save storage policy").click()
    expect(page.get_by_test_id("storage-policy-message")).to_have_text("Storage policy saved")
    expect(page.get_by_test_id("storage-policy-error-code")).to_have_text("")
    saved = stored_policy(app)
    assert saved is not None
    assert saved["sync"] == {"enabled": True}


def test_without_a_token_the_page_asks_for_one_and_calls_nothing(
    page: Page, fake_api: tuple[FakeSettingsApp, str], frontend_url: str
) -> None:
    app, _ = fake_api
    page.goto(frontend_url)
    for section in ("storage-policy", "alerts"):
        expect(page.get_by_test_id(section)).to_have_attribute("data-state", "needs-token")
    expect(page.get_by_test_id("storage-policy-message")).to_have_text(re.compile("Paste a bearer token"))
    assert app.requests == []


def test_a_rejected_token_shows_unauthorized(page: Page, frontend_url: str) -> None:
    open_with_token(page, frontend_url, "not-the-token")
    expect(page.get_by_test_id("storage-policy")).to_have_attribute("data-state", "load-error")
    expect(page.get_by_test_id("storage-policy-error-code")).to_have_text("UNAUTHORIZED")
    expect(page.get_by_test_id("alerts-error-code")).to_have_text("UNAUTHORIZED")


def test_the_runtime_config_token_is_the_default(
    page: Page, frontend_site: FrontendSite, settings_api: SettingsApi
) -> None:
    frontend_site.write_runtime_config(settings_api.base_url, demo_token=settings_api.token)
    page.goto(frontend_site.url)
    settle(page)
    expect(page.get_by_test_id("storage-policy")).to_have_attribute("data-state", "ready")
    expect(page.get_by_test_id("api-token")).to_have_value(settings_api.token)
    expect(page.get_by_test_id("api-base-url")).to_have_text(settings_api.base_url)


def test_an_unreachable_api_shows_a_network_error(page: Page, frontend_site: FrontendSite) -> None:
    closed_port = processes.free_port()
    frontend_site.write_runtime_config(f"http://127.0.0.1:{closed_port}")
    open_with_token(page, frontend_site.url, "any-token")
    expect(page.get_by_test_id("storage-policy")).to_have_attribute("data-state", "load-error")
    expect(page.get_by_test_id("storage-policy-error-code")).to_have_text("NETWORK_ERROR")
