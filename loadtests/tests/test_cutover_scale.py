"""``make cutover-scale``'s parts: the seeded population, the steps it runs, the table. No timing."""

from __future__ import annotations

import json

import pytest

from botmox_api.model import TENANT_ID_PATTERN
from botmox_api.stores.rtdb_storage_policy import LEGACY_VERSION, policy_from_node
from loadtests.cutover_scale import population, steps
from loadtests.cutover_scale.__main__ import Options, _parser, options_of, step_specs, verdict

POLICY_KEYS = {"secrets", "operational", "sync", "updated_at", "updated_by"}


def test_population_is_a_realistic_mix_and_reproducible() -> None:
    seeded = population.build(2000, invalid=8)
    assert seeded.tenants == 2000
    assert seeded.valid == 1992
    assert len(seeded.invalid) == 8
    assert seeded == population.build(2000, invalid=8)
    valid = {key: node for key, node in seeded.nodes.items() if key not in seeded.invalid}
    stored = {key: node["storage_policy"] for key, node in valid.items()}
    assert all(isinstance(node, dict) for node in stored.values())
    legacy = [node for node in stored.values() if isinstance(node, dict) and "version" not in node]
    assert len(legacy) == seeded.legacy
    assert 150 < seeded.legacy < 350  # about one in eight
    policies = [policy_from_node(node) for node in stored.values()]
    assert all(policy is not None for policy in policies)
    assert {policy.operational for policy in policies if policy} == {"local", "cloud"}
    assert {policy.sync_enabled for policy in policies if policy} == {True, False}
    assert len({policy.updated_by for policy in policies if policy}) > 1000
    assert max(policy.version for policy in policies if policy) > 3
    assert sum(policy.version == LEGACY_VERSION for policy in policies if policy) >= seeded.legacy
    for key, node in valid.items():
        assert TENANT_ID_PATTERN.match(key)
        # Other settings, which the cutover must leave alone.
        assert set(node) == {"theme", "proxy", "storage_policy"}
        policy = node["storage_policy"]
        assert isinstance(policy, dict)
        assert POLICY_KEYS <= set(policy) <= POLICY_KEYS | {"version", "write_id"}
        assert ("version" in policy) == ("write_id" in policy)


def test_invalid_documents_are_spread_and_each_has_a_defect() -> None:
    seeded = population.build(1000, invalid=5)
    keys = list(seeded.nodes)
    positions = [keys.index(key) for key in seeded.invalid]
    assert positions == sorted(positions)
    assert positions[0] > 0
    assert positions[-1] < 999
    assert seeded.invalid[-1] == population.INVALID_TENANT_KEY
    assert not TENANT_ID_PATTERN.match(population.INVALID_TENANT_KEY)
    for key in seeded.invalid[:-1]:
        stored = seeded.nodes[key]["storage_policy"]
        assert isinstance(stored, dict)
        wrong = (
            stored["operational"] not in ("local", "cloud")
            or not isinstance(stored["sync"], dict)
            or not isinstance(stored["sync"].get("enabled"), bool)
            or not isinstance(stored["updated_at"], int)
            or bool(set(stored) - POLICY_KEYS - {"version", "write_id"})
        )
        assert wrong, f"{key}: {stored}"


def test_no_invalid_documents_when_none_are_asked_for() -> None:
    seeded = population.build(10, invalid=0)
    assert seeded.invalid == ()
    assert seeded.valid == 10
    with pytest.raises(ValueError, match="invalid"):
        population.build(3, invalid=4)


def test_seeding_is_one_multi_location_patch_per_batch() -> None:
    seeded = population.build(2500, invalid=0)
    bodies = list(population.patch_bodies(seeded, batch=1000))
    assert [len(body) for body in bodies] == [1000, 1000, 500]
    assert next(iter(bodies[0])) == "scale-00000/settings"
    merged = {key.removesuffix("/settings"): value for body in bodies for key, value in body.items()}
    assert merged == seeded.nodes
    assert len(json.dumps(bodies[0])) < 1_000_000, "a batch stays well below RTDB's request limits"


def test_steps_and_their_expected_exit_codes() -> None:
    specs = step_specs(Options(tenants=10, invalid=2, batch_size=100))
    assert [spec.name for spec in specs] == ["plan", "backfill", "backfill again", "catch-up", "verify"]
    assert specs[1].arguments == ("backfill", "--from", "rtdb", "--to", "supabase", "--batch-size", "100")
    assert specs[1].arguments == specs[2].arguments == specs[3].arguments
    assert [spec.expected_exit for spec in specs] == [0, 1, 1, 1, 1]
    assert [spec.expected_exit for spec in step_specs(Options(tenants=10, invalid=0))] == [0, 0, 0, 0, 0]


def test_saves_are_the_apis_next_node_for_valid_tenants_spread_over_the_range() -> None:
    seeded = population.build(1000, invalid=4)
    body = population.saves(seeded, 10)
    assert len(body) == 10
    keys = [key.removesuffix("/settings/storage_policy") for key in body]
    assert not set(keys) & set(seeded.invalid)
    assert keys == sorted(keys)
    assert keys[0] != "scale-00000"
    assert keys[-1] > "scale-00900"
    for key, node in zip(keys, body.values(), strict=True):
        before = policy_from_node(seeded.nodes[key]["storage_policy"])
        after = policy_from_node(node)
        assert before is not None
        assert after is not None
        assert after.operational != before.operational
        assert after.version == before.version + 1
        assert after.updated_at > before.updated_at
        assert (after.sync_enabled, after.updated_by) == (before.sync_enabled, before.updated_by)
    assert population.saves(seeded, 0) == {}
    with pytest.raises(ValueError, match="count"):
        population.saves(seeded, 997)


@pytest.mark.parametrize(
    "arguments",
    [["--tenants", "0"], ["--tenants", "100001"], ["--invalid", "-1"], ["--tenants", "10", "--saves", "11"]],
)
def test_options_out_of_bounds_are_refused(arguments: list[str]) -> None:
    with pytest.raises(SystemExit):
        options_of(_parser().parse_args(arguments))


def test_result_reads_the_tools_json_and_keeps_the_error_of_a_failed_step() -> None:
    spec = steps.StepSpec("backfill", ("backfill",), 1)
    document = {"command": "backfill", "tenants": 400, "written": 390, "exit_code": 1}
    result = steps.result_of(spec, 2.0, 1, json.dumps(document), "")
    assert (result.tenants, result.writes, result.as_expected) == (400, 390, True)
    assert result.tenants_per_second == 200
    failed = steps.result_of(spec, 0.5, 2, "", "SUPABASE_DB_URL is not set")
    assert (failed.tenants, failed.writes, failed.as_expected) == (None, None, False)
    assert "SUPABASE_DB_URL" in failed.output_tail


def test_table_and_verdict() -> None:
    results = [
        steps.StepResult("plan", 3.0, 10_000, None, 0, 0),
        steps.StepResult("backfill", 20.0, 10_000, 9_990, 1, 1),
        steps.StepResult("backfill again", 4.0, 10_000, 3, 1, 1),
        steps.StepResult("catch-up", 4.0, 10_000, 99, 1, 1),
        steps.StepResult("verify", 3.5, 10_000, None, 0, 1),
    ]
    lines = steps.table(results)
    assert lines[0].split() == ["step", "seconds", "tenants", "tenants/s", "writes", "exit"]
    assert lines[1].split() == ["plan", "3.0", "10,000", "3,333", "-", "0"]
    assert lines[2].split() == ["backfill", "20.0", "10,000", "500", "9,990", "1"]
    assert lines[5].endswith("0 (expected 1)")
    assert len({len(line) for line in lines[:3]}) == 1, "aligned columns"
    assert verdict(results, saves=100) == [
        "verify exited 0, not 1",
        "the second backfill wrote 3 (expected 0)",
        "the catch-up wrote 99 (expected 100, the tenants that saved)",
    ]
    assert verdict(results[:3], saves=100) == ["the second backfill wrote 3 (expected 0)"]
    assert verdict(results[3:4], saves=99) == []


def test_the_tool_gets_the_apis_variables_and_nothing_else_of_the_callers(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SUPABASE_DB_URL", "postgresql://elsewhere")
    monkeypatch.setenv("DATA_BACKEND", "supabase")
    monkeypatch.setenv("STORAGE_POLICY_SHADOW", "on")
    environment = steps.tool_environment({"SUPABASE_DB_URL": "postgresql://here"})
    assert environment["SUPABASE_DB_URL"] == "postgresql://here"
    assert "DATA_BACKEND" not in environment
    assert "STORAGE_POLICY_SHADOW" not in environment
    assert "PATH" in environment
