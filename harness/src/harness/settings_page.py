"""Driving the settings page (``services/frontend``) in a browser, against any settings API.

Shared by the page's own tests (``services/frontend/tests/test_page.py``, a fake API) and the
acceptance suite (``harness/tests/acceptance``, the stack the harness brings up), so the two run the
very same scenarios. The page's hooks (``data-testid``, ``data-state``, messages) are those of
``docs/contracts/frontend.md``. Every wait is Playwright's ``expect``, bounded by the page
context's default timeout.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import httpx
from playwright.sync_api import Page, expect

STORAGE_POLICY = "/api/v1/settings/storage_policy"
ALERTS = "/api/v1/settings/alerts"
AGENTS = "/api/v1/agents"
PAGE_TIMEOUT_MS = 10_000

_SETTLED = re.compile(r"^(ready|load-error)$")
# Any state the page can be in once app.js has run (it starts at "idle" in the HTML).
_STARTED = re.compile(r"^(needs-token|loading|ready|load-error)$")


@dataclass(frozen=True)
class SettingsApi:
    """Where the page's API is (as the browser reaches it) and a bearer token it accepts."""

    base_url: str
    token: str


def api_client(api: SettingsApi) -> httpx.Client:
    return httpx.Client(
        base_url=api.base_url, headers={"Authorization": f"Bearer {api.token}"}, trust_env=False, timeout=10
    )


def open_with_token(page: Page, frontend_url: str, token: str) -> None:
    """Opens the page, pastes the token as a user would, and waits until both sections settled.

    A page whose runtime config carries a demo token (the stack's frontend) starts loading at once;
    "Use token" then loads again with the pasted one, and the page drops the older answers.
    """
    page.goto(frontend_url)
    expect(page.get_by_test_id("storage-policy")).to_have_attribute("data-state", _STARTED)
    page.get_by_label("Bearer token").fill(token)
    page.get_by_test_id("api-token-apply").click()
    settle(page)


def settle(page: Page) -> None:
    for section in ("agents", "storage-policy", "alerts"):
        expect(page.get_by_test_id(section)).to_have_attribute("data-state", _SETTLED)


def expect_policy(page: Page, operational: str, sync_enabled: bool) -> None:
    expect(page.get_by_test_id(f"operational-{operational}")).to_be_checked()
    other = "cloud" if operational == "local" else "local"
    expect(page.get_by_test_id(f"operational-{other}")).not_to_be_checked()
    expect(page.get_by_test_id("sync-enabled")).to_be_checked(checked=sync_enabled)
    expect(page.get_by_test_id("secrets")).to_be_disabled()
    expect(page.get_by_test_id("secrets")).to_have_value("local-only")


# --- scenarios that hold against any settings API whose tenant the caller may overwrite ------------


def policy_round_trips_through_the_page(page: Page, api: SettingsApi, frontend_url: str) -> None:
    """Seed a policy, load it on the page, save a change, check the API has it, reload and see it."""
    with api_client(api) as client:
        seeded = client.put(STORAGE_POLICY, json={"operational": "cloud", "sync": {"enabled": False}})
        assert seeded.status_code == 200, seeded.text
    open_with_token(page, frontend_url, api.token)
    expect(page.get_by_test_id("storage-policy-message")).to_have_text("Storage policy loaded")
    expect_policy(page, "cloud", sync_enabled=False)

    page.get_by_label("Local (this machine)").check()
    page.get_by_label("Sync between local and cloud").check()
    page.get_by_role("button", name="Save storage policy").click()

    expect(page.get_by_test_id("storage-policy-message")).to_have_text("Storage policy saved")
    expect(page.get_by_test_id("storage-policy-error-code")).to_have_text("")
    with api_client(api) as client:
        stored = client.get(STORAGE_POLICY).json()["data"]
    assert stored["operational"] == "local"
    assert stored["sync"] == {"enabled": True}
    assert stored["secrets"] == "local-only"

    # A reload starts from scratch: the token comes back from sessionStorage, the policy from the API.
    page.reload()
    settle(page)
    expect(page.get_by_test_id("storage-policy")).to_have_attribute("data-state", "ready")
    expect_policy(page, "local", sync_enabled=True)


def misconfigured_policy_shows_the_error_while_alerts_work(
    page: Page, api: SettingsApi, frontend_url: str, *, warning_days: int = 21
) -> None:
    """``storage_policy`` answers SUPABASE_CONFIG_ERROR on load and save; alerts load and save."""
    open_with_token(page, frontend_url, api.token)
    expect(page.get_by_test_id("storage-policy")).to_have_attribute("data-state", "load-error")
    expect(page.get_by_test_id("storage-policy-message")).to_have_text("Failed to load storage policy")
    expect(page.get_by_test_id("storage-policy-error-code")).to_have_text("SUPABASE_CONFIG_ERROR")

    expect(page.get_by_test_id("alerts")).to_have_attribute("data-state", "ready")
    page.get_by_label("Warn this many days before expiry").fill(str(warning_days))
    page.get_by_role("button", name="Save alerts").click()
    expect(page.get_by_test_id("alerts-message")).to_have_text("Alerts saved")
    with api_client(api) as client:
        assert client.get(ALERTS).json()["data"]["warning_days"] == warning_days

    page.get_by_label("Local (this machine)").check()
    page.get_by_role("button", name="Save storage policy").click()
    expect(page.get_by_test_id("storage-policy")).to_have_attribute("data-state", "save-error")
    expect(page.get_by_test_id("storage-policy-message")).to_have_text("Failed to save storage policy")
    expect(page.get_by_test_id("storage-policy-error-code")).to_have_text("SUPABASE_CONFIG_ERROR")
    expect(page.get_by_test_id("storage-policy-error-message")).not_to_be_empty()


def agents_render_from_the_api(page: Page, api: SettingsApi, frontend_url: str) -> list[dict[str, object]]:
    """The page lists the tenant's agents as ``GET /api/v1/agents`` answers (name, online or offline,
    version), and a reload shows the list again; returns the agents the API gave."""
    with api_client(api) as client:
        answer = client.get(AGENTS)
    assert answer.status_code == 200, answer.text
    agents: list[dict[str, object]] = answer.json()["data"]
    open_with_token(page, frontend_url, api.token)
    expect(page.get_by_test_id("agents")).to_have_attribute("data-state", "ready")
    _expect_agents(page, agents)
    page.get_by_test_id("agents-reload").click()
    expect(page.get_by_test_id("agents")).to_have_attribute("data-state", "ready")
    _expect_agents(page, agents)
    return agents


def _expect_agents(page: Page, agents: list[dict[str, object]]) -> None:
    rows = page.get_by_test_id("agent-row")
    expect(rows).to_have_count(len(agents))
    empty = expect(page.get_by_test_id("agents-empty"))
    if agents:
        empty.to_be_hidden()
    else:
        empty.to_be_visible()
    for index, agent in enumerate(agents):
        row = rows.nth(index)
        state = "revoked" if agent.get("revoked_at") else ("online" if agent.get("online") else "offline")
        expect(row).to_have_attribute("data-agent-id", str(agent["id"]))
        expect(row.get_by_test_id("agent-name")).to_have_text(str(agent["name"]))
        expect(row.get_by_test_id("agent-state")).to_have_text(state)
        expect(row.get_by_test_id("agent-version")).to_have_text(str(agent["version"]))
        expect(row.get_by_test_id("agent-last-seen")).to_have_text(
            re.compile(r"^never$") if agent.get("last_seen_at") is None else re.compile(r"\d")
        )
