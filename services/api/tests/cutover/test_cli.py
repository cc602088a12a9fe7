"""The command line on in-memory stores (typer's CliRunner, the stores handed in as ``obj``): exit
codes, what each command prints, the ``--json`` documents, configuration errors, signals."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
from pathlib import Path
from typing import Any

import pytest
from cutover_fakes import FakeStore, backends, policy
from typer.testing import CliRunner, Result

from botmox_api.config import ApiSettings
from botmox_api.cutover.__main__ import app
from botmox_api.cutover.decisions import Decision
from botmox_api.cutover.survey import State
from botmox_api.model import InvalidStoredPolicy, query_failed

CONFIG_VARIABLES = (
    "SUPABASE_DB_URL",
    "FIREBASE_DATABASE_URL",
    "FIREBASE_PROJECT_ID",
    "FIREBASE_DATABASE_EMULATOR_HOST",
    "GOOGLE_APPLICATION_CREDENTIALS",
    "DEFAULT_TENANT_ID",
)


@pytest.fixture(autouse=True)
def _no_configuration(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in CONFIG_VARIABLES:
        monkeypatch.delenv(name, raising=False)


def invoke(rtdb: FakeStore | None, supabase: FakeStore | None, *args: str, **env: str) -> Result:
    obj = None if rtdb is None or supabase is None else _factory(rtdb, supabase)
    return CliRunner().invoke(app, list(args), obj=obj, env={"COLUMNS": "200", "NO_COLOR": "1", **env})


def _factory(rtdb: FakeStore, supabase: FakeStore) -> Any:
    def build(_settings: ApiSettings, _concurrency: int) -> Any:
        return backends(rtdb, supabase)

    return build


def seeded(rtdb: FakeStore, supabase: FakeStore) -> None:
    rtdb.put("acme", policy(2, operational="local"))
    supabase.put("acme", policy(2, operational="cloud"))
    rtdb.put("beta", policy(1))


# plan


def test_plan_prints_a_row_per_tenant_and_the_totals(rtdb: FakeStore, supabase: FakeStore) -> None:
    seeded(rtdb, supabase)
    result = invoke(rtdb, supabase, "plan")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["tenant", "state", "rtdb", "supabase", "differences"]
    assert lines[1].split() == ["acme", "both", "different", "v2", "v2", "operational"]
    assert lines[2].split() == ["beta", "RTDB", "only", "v1", "-"]
    assert lines[3].startswith("plan: 2 tenants in ")
    assert "1 RTDB only, 0 Supabase only, 0 both equal, 1 both different" in lines[3]
    assert rtdb.closed
    assert supabase.closed


def test_plan_summary_and_json(rtdb: FakeStore, supabase: FakeStore) -> None:
    seeded(rtdb, supabase)
    summary = invoke(rtdb, supabase, "plan", "--summary")
    assert summary.stdout.startswith("plan: 2 tenants")
    document = json.loads(invoke(rtdb, supabase, "plan", "--json").stdout)
    assert set(document) == {"command", "tenants", "totals", "rows", "legacy", "seconds", "exit_code"}
    assert document["totals"] == {str(s): int(s in (State.rtdb_only, State.different)) for s in State}
    assert document["rows"][0] == {
        "tenant": "acme",
        "state": "different",
        "rtdb": {"stored": "policy", "version": 2, "reason": None},
        "supabase": {"stored": "policy", "version": 2, "reason": None},
        "differences": ["operational"],
    }
    assert "rows" not in json.loads(invoke(rtdb, supabase, "plan", "--json", "--summary").stdout)


def test_the_legacy_node_is_reported_by_every_command(rtdb: FakeStore, supabase: FakeStore) -> None:
    rtdb.legacy_node = policy(1)
    expected = "legacy: legacy settings/storage_policy present; --adopt-legacy moves it to tenant 'acme'"
    for command in (["plan"], ["verify"], ["backfill", "--from", "rtdb", "--to", "supabase"]):
        result = invoke(rtdb, supabase, *command, DEFAULT_TENANT_ID="acme")
        assert expected in result.stdout.splitlines(), command


# backfill


def test_backfill_copies_and_a_second_run_reports_zero_writes(rtdb: FakeStore, supabase: FakeStore) -> None:
    rtdb.put("acme", policy(2))
    rtdb.put("beta", policy(1))
    first = invoke(rtdb, supabase, "backfill", "--from", "rtdb", "--to", "supabase")
    assert first.exit_code == 0, first.output
    assert "written: 2; skipped: 0" in first.stdout
    second = invoke(rtdb, supabase, "backfill", "--from", "rtdb", "--to", "supabase")
    assert second.exit_code == 0
    assert "written: 0; skipped: 0" in second.stdout
    assert "already equal" in second.stdout
    assert not Path(".cutover/backfill-rtdb-to-supabase.json").exists()


def test_backfill_exits_1_and_lists_each_skipped_tenant(rtdb: FakeStore, supabase: FakeStore) -> None:
    rtdb.put("acme", InvalidStoredPolicy("unknown key 'colour'", version=1))
    rtdb.put("beta", policy(1))
    result = invoke(rtdb, supabase, "backfill", "--from", "rtdb", "--to", "supabase")
    assert result.exit_code == 1
    assert "  skipped tenant acme: RTDB document invalid: unknown key 'colour'" in result.stdout.splitlines()
    assert supabase.docs == {"beta": policy(1)}


def test_backfill_json_schema(rtdb: FakeStore, supabase: FakeStore) -> None:
    rtdb.put("acme", policy(2, updated_at=1))
    supabase.put("acme", policy(3, updated_at=2))
    rtdb.put("beta", policy(1))
    result = invoke(rtdb, supabase, "backfill", "--from", "rtdb", "--to", "supabase", "--json", "--dry-run")
    assert result.exit_code == 1
    document = json.loads(result.stdout)
    assert document == {
        "command": "backfill",
        "from": "rtdb",
        "to": "supabase",
        "dry_run": True,
        "force": False,
        "tenants": 2,
        "counts": {str(d): int(d in (Decision.create, Decision.target_newer)) for d in Decision},
        "written": 1,
        "skipped": [
            {"tenant": "acme", "decision": "target_newer", "reason": document["skipped"][0]["reason"]},
        ],
        "legacy": {"action": "absent", "message": "no legacy settings/storage_policy"},
        "resumed_after": None,
        "interrupted": False,
        "checkpoint": None,
        "notes": [],
        "seconds": document["seconds"],
        "exit_code": 1,
    }
    assert supabase.writes == []


def test_backfill_progress_goes_to_stderr_a_line_per_batch(rtdb: FakeStore, supabase: FakeStore) -> None:
    for i in range(5):
        rtdb.put(f"t{i}", policy(1))
    result = invoke(
        rtdb, supabase, "backfill", "--from", "rtdb", "--to", "supabase", "--batch-size", "2", "--json"
    )
    lines = [line for line in result.stderr.splitlines() if line.startswith("backfill rtdb -> supabase: ")]
    assert [line.split(": ", 1)[1].split(",")[:3] for line in lines] == [
        ["2/5 tenants", " 2 written", " 0 skipped"],
        ["4/5 tenants", " 4 written", " 0 skipped"],
        ["5/5 tenants", " 5 written", " 0 skipped"],
    ]
    assert all(line.endswith("tenants/s") for line in lines)
    json.loads(result.stdout)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--from", "rtdb", "--to", "rtdb"], "--from and --to name the same backend"),
        (["--from", "rtdb", "--to", "supabase", "--tenant", "Not A Tenant"], "is not a tenant id"),
        (["--from", "rtdb", "--to", "firestore"], "Invalid value for '--to'"),
    ],
)
def test_bad_usage_exits_2(rtdb: FakeStore, supabase: FakeStore, args: list[str], message: str) -> None:
    result = invoke(rtdb, supabase, "backfill", *args)
    assert result.exit_code == 2
    assert message in result.stderr


# verify


def test_verify_prints_every_difference_and_exits_1(rtdb: FakeStore, supabase: FakeStore) -> None:
    seeded(rtdb, supabase)
    result = invoke(rtdb, supabase, "verify")
    assert result.exit_code == 1
    assert result.stdout.splitlines()[:2] == [
        "tenant acme: operational rtdb=local supabase=cloud",
        "tenant beta: document rtdb=stored (version 1) supabase=absent",
    ]
    assert "verify: 2 tenants in " in result.stdout
    assert "2 tenants differ (2 differences)" in result.stdout


def test_verify_exits_0_when_both_sides_match_and_limits_to_tenant(
    rtdb: FakeStore, supabase: FakeStore
) -> None:
    seeded(rtdb, supabase)
    supabase.put("beta", policy(1))
    assert invoke(rtdb, supabase, "verify", "--tenant", "beta").exit_code == 0
    document = json.loads(invoke(rtdb, supabase, "verify", "--json").stdout)
    assert document["match"] is False
    assert document["exit_code"] == 1
    assert document["different_tenants"] == 1
    assert document["differences"] == [
        {"tenant": "acme", "field": "operational", "rtdb": "local", "supabase": "cloud"}
    ]


# configuration and failures


def test_missing_configuration_names_the_variables() -> None:
    result = invoke(None, None, "plan")
    assert result.exit_code == 2
    assert (
        "cutover: invalid configuration: the cutover tool needs SUPABASE_DB_URL (an administrator's DSN"
        in (result.stderr)
    )
    assert "FIREBASE_DATABASE_URL" in result.stderr


def test_an_invalid_value_is_apisettings_own_line() -> None:
    result = invoke(None, None, "verify", DEFAULT_TENANT_ID="Not Valid!")
    assert result.exit_code == 2
    assert (
        "DEFAULT_TENANT_ID='not valid!' is invalid" in result.stderr or "DEFAULT_TENANT_ID=" in result.stderr
    )


def test_a_backend_failure_exits_3_with_its_reason(rtdb: FakeStore, supabase: FakeStore) -> None:
    rtdb.put("acme", policy(1))
    supabase.fail_reads = True
    for command in (["plan"], ["verify"], ["backfill", "--from", "rtdb", "--to", "supabase"]):
        result = invoke(rtdb, supabase, *command)
        assert result.exit_code == 3, command
        assert (
            "Supabase failed: Failed to read storage policy from Supabase (connection refused)"
            in result.stderr
        )
        assert "Traceback" not in result.output
    failure = json.loads(invoke(rtdb, supabase, "verify", "--json").stdout)
    assert failure == {
        "command": "verify",
        "error": {
            "backend": "supabase",
            "message": "Failed to read storage policy from Supabase",
            "reason": "connection refused",
        },
        "exit_code": 3,
    }


def test_a_failed_backfill_prints_what_it_did_and_how_to_resume(rtdb: FakeStore, supabase: FakeStore) -> None:
    for i in range(4):
        rtdb.put(f"t{i}", policy(1))

    def fail(tenant: str) -> None:
        if tenant == "t2":
            raise query_failed("supabase", "write", "storage policy", "server closed the connection")

    supabase.before_write = fail
    result = invoke(rtdb, supabase, "backfill", "--from", "rtdb", "--to", "supabase", "--batch-size", "2")
    assert result.exit_code == 3
    assert "written: 2; skipped: 0" in result.stdout
    assert result.stderr.splitlines()[-1] == (
        "cutover: Supabase failed: Failed to write storage policy to Supabase "
        "(server closed the connection); .cutover/backfill-rtdb-to-supabase.json keeps what is done; "
        "run the same command again to resume"
    )


# signals


@pytest.mark.parametrize(("received", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 3)])
def test_a_signal_stops_the_backfill_after_the_batch_in_flight(
    rtdb: FakeStore, supabase: FakeStore, received: signal.Signals, code: int
) -> None:
    for i in range(6):
        rtdb.put(f"t{i}", policy(1))
    supabase.before_write = lambda tenant: os.kill(os.getpid(), received) if tenant == "t0" else None
    result = invoke(rtdb, supabase, "backfill", "--from", "rtdb", "--to", "supabase", "--batch-size", "2")
    assert result.exit_code == code, result.output
    assert supabase.writes == ["t0", "t1"]
    assert "run the same command again to resume" in result.stdout
    assert Path(".cutover/backfill-rtdb-to-supabase.json").exists()

    supabase.before_write = None
    resumed = invoke(rtdb, supabase, "backfill", "--from", "rtdb", "--to", "supabase", "--batch-size", "2")
    assert resumed.exit_code == 0
    assert "note: resuming after tenant 't1'" in resumed.stdout
    assert "written: 6; skipped: 0" in resumed.stdout
    assert supabase.writes == [f"t{i}" for i in range(6)]


def test_a_second_signal_abandons_the_batch_in_flight(rtdb: FakeStore, supabase: FakeStore) -> None:
    for i in range(6):
        rtdb.put(f"t{i}", policy(1))

    def twice(tenant: str) -> None:
        if tenant == "t3":
            os.kill(os.getpid(), signal.SIGINT)
            os.kill(os.getpid(), signal.SIGINT)

    supabase.before_write = twice
    result = invoke(rtdb, supabase, "backfill", "--from", "rtdb", "--to", "supabase", "--batch-size", "4")
    assert result.exit_code == 130, result.output
    assert "the batch in flight was abandoned" in result.stdout
    assert rtdb.closed
    assert supabase.closed


# make targets


@pytest.mark.parametrize(
    ("target", "variables", "expected"),
    [
        ("cutover-plan", ["CUTOVER_ARGS=--summary --json"], "-m botmox_api.cutover plan --summary --json"),
        (
            "cutover-backfill",
            ["FROM=supabase", "TO=rtdb", "CUTOVER_ARGS=--dry-run"],
            "-m botmox_api.cutover backfill --from supabase --to rtdb --dry-run",
        ),
        ("cutover-verify", [], "-m botmox_api.cutover verify"),
    ],
)
def test_the_make_targets_run_the_tool(target: str, variables: list[str], expected: str) -> None:
    root = Path(__file__).resolve().parents[4]
    shown = subprocess.run(
        [
            "make",
            "-n",
            "-C",
            str(root),
            "--no-print-directory",
            "-o",
            ".venv/.botmox-synced",
            target,
            *variables,
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert shown.rstrip().splitlines()[-1].endswith(expected)


def test_make_cutover_backfill_needs_both_directions() -> None:
    root = Path(__file__).resolve().parents[4]
    done = subprocess.run(
        [
            "make",
            "-C",
            str(root),
            "--no-print-directory",
            "-o",
            ".venv/.botmox-synced",
            "cutover-backfill",
            "FROM=rtdb",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 2
    assert "make cutover-backfill needs FROM=rtdb|supabase TO=supabase|rtdb" in done.stderr


def test_an_interrupted_dry_run_says_it_wrote_nothing(rtdb: FakeStore, supabase: FakeStore) -> None:
    for i in range(6):
        rtdb.put(f"t{i}", policy(1))
    reads = rtdb.read_stored

    async def interrupting(tenant_ids: Any) -> Any:
        os.kill(os.getpid(), signal.SIGINT)
        await asyncio.sleep(0)
        return await reads(tenant_ids)

    rtdb.read_stored = interrupting  # type: ignore[method-assign]
    result = invoke(
        rtdb, supabase, "backfill", "--from", "rtdb", "--to", "supabase", "--dry-run", "--batch-size", "2"
    )
    assert result.exit_code == 130, result.output
    assert "interrupted: a dry run writes nothing; run it again" in result.stdout
    assert not Path(".cutover").exists()
