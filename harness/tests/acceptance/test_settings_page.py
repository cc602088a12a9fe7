"""The settings page saves the policy to the store of the stack's backend, and a Supabase left unconfigured
fails the policy alone: headless Chromium against real APIs.

The page scenarios are those of ``services/frontend/tests/test_page.py`` (``harness.settings_page``),
run here against the stack's own frontend and API instead of a fake, and followed by a look into the
store the policy must have reached. The bad configuration is a second API, in ``supabase`` mode
without any Supabase setting, on the stack's RTDB, with a frontend of its own.
"""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from misconfigured_api import misconfigured_api
from playwright.sync_api import Page, expect

from harness.fixtures.cli_stack import StackUnderTest
from harness.settings_page import (
    STORAGE_POLICY,
    SettingsApi,
    agents_render_from_the_api,
    misconfigured_policy_shows_the_error_while_alerts_work,
    policy_round_trips_through_the_page,
)

pytestmark = pytest.mark.integration


def test_the_page_loads_saves_and_reloads_the_policy(stack: StackUnderTest, page: Page) -> None:
    api = SettingsApi(stack.printed.api_url, stack.printed.token)
    policy_round_trips_through_the_page(page, api, stack.printed.frontend_url)

    # What the page saved is in the store of the stack's backend.
    if stack.backend == "rtdb":
        raw = stack.settings_node("storage_policy")
        assert isinstance(raw, dict)
        assert (raw["operational"], raw["sync"]) == ("local", {"enabled": True})
    else:
        row = stack.policy_row()
        assert row is not None
        assert (row["operational"], row["sync_enabled"]) == ("local", True)


def test_the_page_lists_the_stack_s_agent_online(stack: StackUnderTest, page: Page) -> None:
    """`up` paired one agent with the stack (in either backend: agents live in PostgreSQL); the page
    shows it online, as GET /api/v1/agents does."""
    api = SettingsApi(stack.printed.api_url, stack.printed.token)
    agents = agents_render_from_the_api(page, api, stack.printed.frontend_url)
    assert [(agent["name"], agent["online"]) for agent in agents] == [("local-stack", True)]
    row = page.get_by_test_id("agent-row")
    expect(row).to_have_attribute("data-state", "online")
    expect(row.get_by_test_id("agent-state")).to_have_text("online")


def test_supabase_mode_without_supabase_settings_fails_only_the_policy(
    stack: StackUnderTest, page: Page, tmp_path: Path
) -> None:
    with misconfigured_api(stack.state, tmp_path / "misconfigured") as broken:
        headers = {"Authorization": f"Bearer {broken.token}"}
        with httpx.Client(base_url=broken.api_url, headers=headers, timeout=10, trust_env=False) as client:
            answer = client.get(STORAGE_POLICY)
            assert answer.status_code == 503, answer.text
            error = answer.json()["error"]
            assert error["code"] == "SUPABASE_CONFIG_ERROR"
            assert error["details"]["missing"], error

        misconfigured_policy_shows_the_error_while_alerts_work(
            page, SettingsApi(broken.api_url, broken.token), broken.frontend_url, warning_days=21
        )
    # The alerts the page saved went to the stack's RTDB, for the second API's tenant.
    assert stack.settings_node("alerts/warning_days", tenant=broken.tenant) == 21
