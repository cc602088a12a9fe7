"""Cut over and roll back with the cutover tool and ``flip``: nothing is lost, nothing changes for a client.

Policies of several tenants are written through the API in one mode, copied with ``backfill``,
checked with ``verify``, and the API is flipped: every tenant then reads the same policy with the same
ETag, and ``If-Match`` keeps its meaning. The way back (writes in ``supabase`` mode, ``backfill --from
supabase --to rtdb``, flip back) loses nothing either. Each step is checked through the API's answers
and the raw stores (RTDB nodes over REST, rows over SQL). Also at the stack level: a second backfill
writes nothing, and ``verify`` names the one tenant and field that differ.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from operator_commands import Operator
from served_policy import Served, served, write, written

from harness.fixtures.cli_stack import StackUnderTest

pytestmark = pytest.mark.integration

SETTINGS = "/api/v1/settings"
# A different history per tenant, so versions, fields and authors differ between them.
History = tuple[tuple[str, dict[str, Any]], ...]
HISTORIES: tuple[History, ...] = (
    (("PUT", {"operational": "local"}),),
    (("PUT", {"operational": "local", "sync": {"enabled": True}}), ("PATCH", {"operational": "cloud"})),
    (("PATCH", {"sync": {"enabled": True}}), ("PATCH", {"operational": "local"}), ("PUT", {"sync": {}})),
    (("PUT", {"operational": "cloud"}), ("PATCH", {"sync": {"enabled": True}}), ("PATCH", {})),
)


def _write_history(
    stack: StackUnderTest, tenant: str, history: tuple[tuple[str, dict[str, Any]], ...]
) -> None:
    for method, body in history:
        answer = write(stack, tenant, method, body)
        # An empty body is refused (400) in both modes; the history goes on without it.
        assert answer.status_code in (200, 400), answer.text


def _write_other_settings(stack: StackUnderTest, tenant: str, index: int) -> None:
    with stack.api_as(tenant) as api:
        for method, path, body in (
            ("PUT", "alerts", {"warning_days": 7 + index, "channel": "email"}),
            ("PUT", "ui/theme", "dark" if index % 2 else "light"),
            ("PATCH", "settings/generators/g1", {"enabled": True, "count": index}),
        ):
            answer = api.request(method, f"{SETTINGS}/{path}", json=body)
            assert answer.status_code == 200, answer.text


def _other_settings(stack: StackUnderTest, tenant: str) -> dict[str, Any]:
    """The tenant's raw settings node in RTDB without the policy's node."""
    node = stack.rtdb_get(f"tenants/{tenant}/settings")
    assert isinstance(node, dict)
    return {key: value for key, value in node.items() if key != "storage_policy"}


def _tree(stack: StackUnderTest, tenant: str) -> dict[str, Any]:
    with stack.api_as(tenant) as api:
        answer = api.get(SETTINGS)
    assert answer.status_code == 200, answer.text
    tree: dict[str, Any] = answer.json()["data"]
    return tree


def _row_of(policy: Served, tenant: str) -> dict[str, object]:
    """The ``public.storage_policies`` row that stores exactly what the API served."""
    assert policy.document is not None
    return {
        "tenant_id": tenant,
        "secrets": policy.document["secrets"],
        "operational": policy.document["operational"],
        "sync_enabled": policy.document["sync"]["enabled"],
        "updated_at_ms": policy.document["updated_at"],
        "updated_by": policy.document["updated_by"],
        "version": policy.version,
    }


def _rtdb_node_matches(stack: StackUnderTest, tenant: str, policy: Served) -> None:
    node = stack.settings_node("storage_policy", tenant)
    assert isinstance(node, dict), node
    assert {key: value for key, value in node.items() if key != "write_id"} == {
        **(policy.document or {}),
        "version": policy.version,
    }


def test_backfill_verify_and_flip_to_supabase_keep_every_policy_and_etag(
    stack: StackUnderTest, operator: Operator, tenants: Callable[[int], list[str]]
) -> None:
    *with_policy, without_policy = tenants(len(HISTORIES) + 1)
    for index, (tenant, history) in enumerate(zip(with_policy, HISTORIES, strict=True)):
        _write_history(stack, tenant, history)
        _write_other_settings(stack, tenant, index)
    _write_other_settings(stack, without_policy, len(HISTORIES))
    before = {tenant: served(stack, tenant) for tenant in with_policy}
    trees = {tenant: _tree(stack, tenant) for tenant in (*with_policy, without_policy)}
    others = {tenant: _other_settings(stack, tenant) for tenant in (*with_policy, without_policy)}
    assert len({policy.version for policy in before.values()}) > 1, "histories of different lengths"
    for tenant, policy in before.items():
        _rtdb_node_matches(stack, tenant, policy)
        assert stack.policy_row(tenant) is None

    copied = operator.cutover_json("backfill", "--from", "rtdb", "--to", "supabase")
    assert copied["written"] == len(with_policy), copied
    assert copied["skipped"] == [], copied
    for tenant, policy in before.items():
        assert stack.policy_row(tenant) == _row_of(policy, tenant)
    assert stack.policy_row(without_policy) is None
    checked = operator.cutover_json("verify")
    assert checked["match"] is True, checked
    assert checked["differences"] == []
    again = operator.cutover_json("backfill", "--from", "rtdb", "--to", "supabase")
    assert again["written"] == 0, again  # idempotent: the second run writes nothing
    assert again["counts"]["equal"] == len(with_policy), again

    operator.flip("supabase")
    assert stack.current().data_backend == "supabase"
    for tenant in (*with_policy, without_policy):
        # The same answers, the policy now from public.storage_policies, the rest from RTDB.
        assert _tree(stack, tenant) == trees[tenant]
        assert _other_settings(stack, tenant) == others[tenant]
    assert served(stack, without_policy) == Served(None, None)
    for tenant, policy in before.items():
        assert served(stack, tenant) == policy
        # If-Match with the ETag read before the flip still matches, once; then it is stale.
        after = written(stack, tenant, "PATCH", {"operational": "local"}, if_match=policy.etag)
        assert after.version == policy.version + 1
        stale = write(stack, tenant, "PUT", {"operational": "cloud"}, if_match=policy.etag)
        assert stale.status_code == 412, stale.text
        assert stale.json()["error"]["details"] == {"current_version": after.version}
        assert stack.policy_row(tenant) == _row_of(after, tenant)
        # The write went to Supabase only: RTDB still holds the copy's source.
        _rtdb_node_matches(stack, tenant, policy)

    # Other settings are still RTDB's: written raw, served; written through the API, stored there.
    tenant = with_policy[0]
    stack.rtdb_put(f"tenants/{tenant}/settings/alerts/warning_days", 99)
    with stack.api_as(tenant) as api:
        assert api.get(f"{SETTINGS}/alerts").json()["data"]["warning_days"] == 99
        assert api.put(f"{SETTINGS}/proxy", json={"check_interval_hours": 3}).status_code == 200
    proxy = stack.settings_node("proxy", tenant)
    assert isinstance(proxy, dict)
    assert proxy["check_interval_hours"] == 3


def test_writes_in_supabase_mode_survive_the_way_back_to_rtdb(
    stack: StackUnderTest, operator: Operator, tenants: Callable[[int], list[str]]
) -> None:
    patched, replaced, untouched, created = tenants(4)
    for tenant in (patched, replaced, untouched):
        written(stack, tenant, "PUT", {"operational": "local", "sync": {"enabled": True}})
    operator.cutover_json("backfill", "--from", "rtdb", "--to", "supabase")
    assert operator.cutover_json("verify")["match"] is True
    operator.flip("supabase")

    written(stack, patched, "PATCH", {"sync": {"enabled": False}})
    written(stack, replaced, "PUT", {"operational": "cloud"})
    written(stack, replaced, "PUT", {"operational": "local"})
    written(stack, created, "PATCH", {"sync": {"enabled": True}})
    latest = {tenant: served(stack, tenant) for tenant in (patched, replaced, untouched, created)}
    assert stack.settings_node("storage_policy", created) is None

    back = operator.cutover_json("backfill", "--from", "supabase", "--to", "rtdb")
    assert back["written"] == 3, back  # patched, replaced, created; untouched is equal
    assert back["skipped"] == [], back
    assert operator.cutover_json("verify")["match"] is True
    operator.flip("rtdb")

    for tenant, policy in latest.items():
        assert served(stack, tenant) == policy, tenant
        _rtdb_node_matches(stack, tenant, policy)
        after = written(stack, tenant, "PATCH", {"operational": "cloud"}, if_match=policy.etag)
        assert after.version == policy.version + 1
    assert stack.policy_row(replaced) == _row_of(latest[replaced], replaced), "Supabase keeps its copy"


def test_verify_names_the_one_tenant_and_field_that_differ(
    stack: StackUnderTest, operator: Operator, tenants: Callable[[int], list[str]]
) -> None:
    names = tenants(3)
    for tenant in names:
        written(stack, tenant, "PUT", {"operational": "local", "sync": {"enabled": True}})
    operator.cutover_json("backfill", "--from", "rtdb", "--to", "supabase")
    assert operator.cutover_json("verify")["match"] is True

    drifted = names[1]
    stack.rtdb_put(f"tenants/{drifted}/settings/storage_policy/operational", "cloud")
    found = operator.cutover_json("verify", exit_code=1)
    assert found["match"] is False
    assert found["differences"] == [
        {"tenant": drifted, "field": "operational", "rtdb": "cloud", "supabase": "local"}
    ]
    text = operator.cutover("verify")
    assert text.exit_code == 1, str(text)
    assert f"tenant {drifted}: operational" in text.result.stdout
    for tenant in names:
        if tenant != drifted:
            assert tenant not in text.result.stdout
