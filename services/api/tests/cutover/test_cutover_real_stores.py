"""The cutover tool end to end, as ops run it: ``python -m botmox_api.cutover`` in a subprocess, on
the real stores (``stores.factory.backfill_stores``) over the harness's PostgreSQL (the superuser's
DSN: an administrator's) and RTDB emulator."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from botmox_api.config import ApiSettings
from botmox_api.model import StoragePolicy
from botmox_api.stores._rtdb import LEGACY_STORAGE_POLICY_PATH, resolve_rtdb_target, storage_policy_path
from botmox_api.stores._rtdb_rest import RtdbRestClient
from botmox_api.stores.factory import BackfillStores, backfill_stores
from botmox_api.stores.rtdb_storage_policy import node_from_policy

pytestmark = pytest.mark.integration

RUN_TIMEOUT_S = 120
# The variables the tool reads; the test's environment must not leak others in.
_CLEARED = (
    "SUPABASE_DB_URL",
    "SUPABASE_URL",
    "SUPABASE_ANON_KEY",
    "SUPABASE_JWT_SECRET",
    "FIREBASE_DATABASE_URL",
    "FIREBASE_PROJECT_ID",
    "FIREBASE_DATABASE_EMULATOR_HOST",
    "GOOGLE_APPLICATION_CREDENTIALS",
    "DEFAULT_TENANT_ID",
    "DATA_BACKEND",
    "APP_ENV",
)


def policy(version: int, *, operational: str = "local", updated_at: int = 1_700_000_000_000) -> StoragePolicy:
    return StoragePolicy(
        operational="local" if operational == "local" else "cloud",
        sync_enabled=version % 2 == 0,
        updated_at=updated_at + version,
        updated_by=f"uid-{version}",
        version=version,
    )


@dataclasses.dataclass(frozen=True)
class Tool:
    env: dict[str, str]
    cwd: Path

    async def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        """The tool in a thread: the loop keeps serving the test's own store connections meanwhile
        (blocked past 5 s, it would miss the emulator closing an idle keep-alive connection, and the
        test's next write would go out on a dead one)."""
        return await asyncio.to_thread(self._run, *args)

    def _run(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "botmox_api.cutover", *args],
            env=self.env,
            cwd=self.cwd,
            capture_output=True,
            text=True,
            timeout=RUN_TIMEOUT_S,
            check=False,
        )

    async def json(self, *args: str) -> tuple[int, dict[str, Any]]:
        """The exit code and the document (with the run's stderr under ``"stderr"``, for messages)."""
        done = await self.run(*args, "--json")
        assert "Traceback" not in done.stderr, done.stderr
        try:
            document = json.loads(done.stdout)
        except ValueError:
            raise AssertionError(f"no JSON document: {done.stdout!r}; stderr: {done.stderr}") from None
        return done.returncode, {**document, "stderr": done.stderr}


@pytest.fixture
def variables(pg_database: Any, rtdb_emulator: Any, rtdb_namespace: str) -> dict[str, str]:
    return {
        "SUPABASE_DB_URL": pg_database.admin_dsn,
        "FIREBASE_DATABASE_URL": f"https://{rtdb_namespace}.firebaseio.com",
        "FIREBASE_DATABASE_EMULATOR_HOST": rtdb_emulator.host,
    }


@pytest.fixture
def tool(variables: dict[str, str], tmp_path: Path) -> Tool:
    base = {name: value for name, value in os.environ.items() if name not in _CLEARED}
    return Tool(env={**base, **variables}, cwd=tmp_path)


@pytest.fixture
async def stores(variables: dict[str, str]) -> AsyncIterator[BackfillStores]:
    settings = ApiSettings(_env_file=None, **{name.lower(): value for name, value in variables.items()})  # type: ignore[call-arg]
    built = backfill_stores(settings)
    yield built
    await built.aclose()


@pytest.fixture
async def raw(variables: dict[str, str]) -> AsyncIterator[RtdbRestClient]:
    """RTDB written as a hand edit or the legacy server would, bypassing the store."""
    target = resolve_rtdb_target(
        database_url=variables["FIREBASE_DATABASE_URL"],
        project_id=None,
        emulator_host=variables["FIREBASE_DATABASE_EMULATOR_HOST"],
        credentials_path=None,
    )
    assert target is not None
    client = RtdbRestClient(target)
    yield client
    await client.aclose()


def interrupted_after_the_first_batch(tool: Tool) -> tuple[int, str]:
    """A backfill that gets Ctrl-C once its first batch is done: (exit code, stdout + stderr)."""
    command = [sys.executable, "-m", "botmox_api.cutover", "backfill", "--from", "rtdb", "--to", "supabase"]
    with subprocess.Popen(
        [*command, "--batch-size", "5", "--concurrency", "1"],
        env=tool.env,
        cwd=tool.cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    ) as process:
        assert process.stderr is not None
        first = process.stderr.readline()  # the first batch's progress line
        assert first.startswith("backfill rtdb -> supabase: 5/300 tenants"), first
        process.send_signal(signal.SIGINT)
        stdout, stderr = process.communicate(timeout=RUN_TIMEOUT_S)
    return process.returncode, stdout + stderr


async def seed(stores: BackfillStores, backend: str, count: int) -> dict[str, StoragePolicy]:
    store = stores.rtdb if backend == "rtdb" else stores.supabase
    seeded = {f"t-{i:04d}": policy(i + 1) for i in range(count)}
    for tenant, stored in seeded.items():
        await store.write_stored(tenant, stored, expected_version=None)
    return seeded


async def test_plan_backfill_twice_and_verify_rtdb_to_supabase(
    tool: Tool, stores: BackfillStores, raw: RtdbRestClient
) -> None:
    seeded = await seed(stores, "rtdb", 25)
    await raw.set(storage_policy_path("t-bad"), {**node_from_policy(policy(1), "w"), "operational": "hybrid"})

    code, plan = await tool.json("plan")
    assert code == 0, plan
    assert plan["totals"] == {
        "rtdb_only": 25,
        "supabase_only": 0,
        "equal": 0,
        "different": 0,
        "invalid": 1,
        "neither": 0,
    }

    code, first = await tool.json("backfill", "--from", "rtdb", "--to", "supabase", "--batch-size", "10")
    assert code == 1, first  # t-bad skipped
    assert first["written"] == 25
    assert [(s["tenant"], s["decision"]) for s in first["skipped"]] == [("t-bad", "source_invalid")]
    assert "operational" in first["skipped"][0]["reason"]
    copied = await stores.supabase.read_stored(sorted(seeded))
    assert copied == seeded  # updated_at, updated_by and version kept

    code, second = await tool.json("backfill", "--from", "rtdb", "--to", "supabase")
    assert code == 1, second
    assert second["written"] == 0
    assert second["counts"]["equal"] == 25
    assert not (tool.cwd / ".cutover").exists() or not any((tool.cwd / ".cutover").iterdir())

    await raw.delete(storage_policy_path("t-bad"))
    verified = await tool.run("verify")
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert verified.stdout.splitlines()[-2].endswith("both sides match")

    changed = dataclasses.replace(seeded["t-0007"], operational="cloud")
    await stores.supabase.write_stored("t-0007", changed, expected_version=seeded["t-0007"].version)
    drift = await tool.run("verify")
    assert drift.returncode == 1, drift.stdout + drift.stderr
    assert drift.stdout.splitlines()[0] == "tenant t-0007: operational rtdb=local supabase=cloud"
    assert "1 tenant differs (1 difference)" in drift.stdout


async def test_rollback_supabase_to_rtdb_keeps_a_newer_target_unless_forced(
    tool: Tool, stores: BackfillStores
) -> None:
    seeded = await seed(stores, "supabase", 5)
    newer = dataclasses.replace(seeded["t-0002"], operational="cloud", updated_at=1_800_000_000_000)
    await stores.rtdb.write_stored("t-0002", newer, expected_version=None)

    code, result = await tool.json("backfill", "--from", "supabase", "--to", "rtdb")
    assert code == 1, result
    assert [(s["tenant"], s["decision"]) for s in result["skipped"]] == [("t-0002", "target_newer")]
    assert (await stores.rtdb.read_stored(["t-0002"]))["t-0002"] == newer

    code, forced = await tool.json("backfill", "--from", "supabase", "--to", "rtdb", "--force")
    assert code == 0, forced
    assert forced["counts"]["overwrite"] == 1
    assert (await tool.run("verify")).returncode == 0


async def test_the_legacy_node_is_reported_then_adopted_and_copied_on(
    tool: Tool, stores: BackfillStores, raw: RtdbRestClient
) -> None:
    legacy = {
        "operational": "local",
        "sync": {"enabled": True},
        "updated_at": 1_600_000_000_000,
        "updated_by": "old",
    }
    await raw.set(LEGACY_STORAGE_POLICY_PATH, legacy)
    plan = await tool.run("plan")
    assert (
        "legacy: legacy settings/storage_policy present; --adopt-legacy moves it to tenant 'default'"
        in plan.stdout.splitlines()
    )

    code, result = await tool.json("backfill", "--from", "rtdb", "--to", "supabase", "--adopt-legacy")
    assert code == 0, result
    assert result["legacy"]["action"] == "adopted"
    assert result["counts"]["create"] == 1
    assert await raw.get(LEGACY_STORAGE_POLICY_PATH) is None
    adopted = StoragePolicy("local", True, 1_600_000_000_000, "old", 1)
    assert await stores.rtdb.read_stored(["default"]) == {"default": adopted}
    assert await stores.supabase.read_stored(["default"]) == {"default": adopted}


async def test_ctrl_c_keeps_the_checkpoint_and_the_next_run_resumes(
    tool: Tool, stores: BackfillStores
) -> None:
    seeded = await seed(stores, "rtdb", 300)
    code, stdout = await asyncio.to_thread(interrupted_after_the_first_batch, tool)
    assert code == 130, stdout
    assert "run the same command again to resume" in stdout
    assert (tool.cwd / ".cutover" / "backfill-rtdb-to-supabase.json").exists()

    code, resumed = await tool.json("backfill", "--from", "rtdb", "--to", "supabase")
    assert code == 0, resumed
    assert resumed["resumed_after"] is not None
    assert resumed["counts"]["create"] == 300
    assert await stores.supabase.read_stored(sorted(seeded)) == seeded
    assert not (tool.cwd / ".cutover" / "backfill-rtdb-to-supabase.json").exists()


def test_missing_configuration_exits_2_naming_the_variable(tmp_path: Path) -> None:
    env = {name: value for name, value in os.environ.items() if name not in _CLEARED}
    done = Tool(env=env, cwd=tmp_path)._run("verify")
    assert done.returncode == 2
    assert "the cutover tool needs SUPABASE_DB_URL (an administrator's DSN" in done.stderr
    assert "Traceback" not in done.stderr


def test_a_backend_that_cannot_be_reached_exits_3_with_its_reason(tool: Tool) -> None:
    unreachable = Tool(
        env={**tool.env, "SUPABASE_DB_URL": "postgresql://admin:x@127.0.0.1:1/postgres"}, cwd=tool.cwd
    )
    done = unreachable._run("plan")
    assert done.returncode == 3, done.stdout + done.stderr
    assert done.stderr.startswith("cutover: Supabase failed: Failed to read storage policy from Supabase (")
    assert "Traceback" not in done.stderr
    assert "admin:x" not in done.stderr
