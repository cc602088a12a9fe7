"""Where the stack's API keeps each settings path, read straight from the stores.

Generic paths live in RTDB under ``tenants/<tenant>/settings/<path>`` in both modes: written through
the API, they are read back raw from the emulator, and a node written raw is served by the API.
``storage_policy`` lives in RTDB with ``rtdb`` and only in ``public.storage_policies`` with
``supabase``, checked with SQL as the database's administrator.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from harness.fixtures.cli_stack import StackUnderTest

pytestmark = pytest.mark.integration

SETTINGS = "/api/v1/settings"
STORAGE_POLICY = f"{SETTINGS}/storage_policy"


@dataclass(frozen=True)
class Write:
    """One API write and the RTDB path (below the tenant's settings) where its node must land."""

    method: str
    path: str
    body: object
    node: str


WRITES = (
    Write("PUT", "alerts", {"warning_days": 14, "channel": "email"}, "alerts"),
    Write("PUT", "proxy", {"fraud_score_threshold": 75, "check_interval_hours": 12}, "proxy"),
    Write("PUT", "proxy/check_interval_hours", 24, "proxy/check_interval_hours"),
    # The Bot-Mox frontend prefixes its paths with "settings/"; the API drops one such segment.
    Write("PATCH", "settings/generators/g1", {"enabled": True, "count": 3}, "generators/g1"),
    Write("PUT", "ui/theme", "dark", "ui/theme"),
)


@pytest.mark.parametrize("write", WRITES, ids=lambda write: f"{write.method} {write.path}")
def test_a_generic_path_round_trips_through_rtdb(stack: StackUnderTest, write: Write) -> None:
    with stack.api() as api:
        answer = api.request(write.method, f"{SETTINGS}/{write.path}", json=write.body)
        assert answer.status_code == 200, answer.text
        written = answer.json()["data"]
        raw = stack.settings_node(write.node)
        assert raw == written
        if isinstance(write.body, dict):
            assert isinstance(raw, dict)
            assert {key: raw[key] for key in write.body} == write.body
            assert isinstance(raw["updated_at"], int)
        else:
            assert raw == write.body
        read_back = api.get(f"{SETTINGS}/{write.node}")
        assert read_back.json()["data"] == raw


def test_a_patch_merges_into_the_node_rtdb_holds(stack: StackUnderTest) -> None:
    stack.rtdb_put(
        f"tenants/{stack.tenant}/settings/notifications", {"email": "ops@example.test", "telegram": "@ops"}
    )
    with stack.api() as api:
        whole = api.get(SETTINGS).json()["data"]
        assert whole["notifications"] == {"email": "ops@example.test", "telegram": "@ops"}
        patched = api.patch(f"{SETTINGS}/notifications", json={"email": None, "slack": "#ops"})
        assert patched.status_code == 200, patched.text
    raw = stack.settings_node("notifications")
    assert isinstance(raw, dict)
    assert raw.pop("updated_at") == patched.json()["data"]["updated_at"]
    assert raw == {"telegram": "@ops", "slack": "#ops"}


def test_storage_policy_lands_in_the_store_of_the_backend(stack: StackUnderTest) -> None:
    with stack.api() as api:
        put = api.put(STORAGE_POLICY, json={"operational": "local", "sync": {"enabled": True}})
        assert put.status_code == 200, put.text
        patched = api.patch(STORAGE_POLICY, json={"sync": {"enabled": False}})
        assert patched.status_code == 200, patched.text
        alerts = api.patch(f"{SETTINGS}/alerts", json={"warning_days": 9})
        assert alerts.status_code == 200, alerts.text
        whole = api.get(SETTINGS).json()["data"]
    policy = patched.json()["data"]
    version = int(patched.headers["etag"].strip('"'))
    assert version == int(put.headers["etag"].strip('"')) + 1
    assert policy["operational"] == "local"
    assert policy["sync"] == {"enabled": False}
    assert whole["storage_policy"] == policy

    raw = stack.settings_node("storage_policy")
    row = stack.policy_row()
    if stack.backend == "rtdb":
        assert isinstance(raw, dict)
        # Beside the document, the node holds the store's version and the id of the write that made it.
        assert raw == {**policy, "version": version, "write_id": raw["write_id"]}
        assert row is None, "with DATA_BACKEND=rtdb nothing may reach public.storage_policies"
    else:
        assert row == {
            "tenant_id": stack.tenant,
            "secrets": "local-only",
            "operational": "local",
            "sync_enabled": False,
            "updated_at_ms": policy["updated_at"],
            "updated_by": policy["updated_by"],
            "version": version,
        }
        assert raw is None, "with DATA_BACKEND=supabase the policy must not reach RTDB"
    # Every other path stays in RTDB in both modes.
    raw_alerts = stack.settings_node("alerts")
    assert isinstance(raw_alerts, dict)
    assert raw_alerts["warning_days"] == 9
    assert whole["alerts"] == raw_alerts
