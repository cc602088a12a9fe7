"""Shadow reads on the real stores: the harness's PostgreSQL (Supabase over SQL) and the RTDB emulator.

The same policies are planted in both backends (written through the SQL store, whose database sets
``updated_at`` and ``version``, then copied into RTDB exactly), one tenant's RTDB copy differing in
one field. Read through the API with shadow reads on, in either mode, exactly that tenant is counted
and logged, by the name of that field.
"""

from __future__ import annotations

import io
import json
from typing import Any, Final

import pytest
from api_support import make_settings, running, user

from botmox_api.app import create_app
from botmox_api.model import DataBackend, StoragePolicyChanges
from botmox_api.shadow_reads import MISMATCH_EVENT, SUMMARY_EVENT, ShadowCounts, ShadowReads
from botmox_api.stores._rtdb import resolve_rtdb_target
from botmox_api.stores.rtdb_settings import RtdbSettingsStore
from botmox_api.stores.supabase_sql import SqlStoragePolicyStore
from harness.fixtures.rtdb import EmulatorFaults

EQUAL: Final = "tenant-equal"
DRIFTED: Final = "tenant-drifted"
NOWHERE: Final = "tenant-nowhere"
AUTHOR: Final = "uid-author"


async def _plant(pg_database: Any, rtdb_emulator: Any, namespace: str) -> None:
    sql = SqlStoragePolicyStore(pg_database.api_dsn)
    target = resolve_rtdb_target(
        database_url=f"https://{namespace}.firebaseio.com",
        project_id=None,
        emulator_host=rtdb_emulator.host,
        credentials_path=None,
    )
    assert target is not None
    rtdb = RtdbSettingsStore(target)
    try:
        for tenant in (EQUAL, DRIFTED):
            policy = await sql.replace(tenant, StoragePolicyChanges("local", True), updated_by=AUTHOR)
            node = {**policy.to_document(), "version": policy.version}
            if tenant == DRIFTED:
                node["operational"] = "cloud"
            # Through the parent, so the node holds exactly this (as a backfill would leave it).
            await rtdb.write(tenant, (), {"storage_policy": node}, updated_at=0)
    finally:
        await sql.aclose()
        await rtdb.aclose()


@pytest.mark.parametrize("mode", ["rtdb", "supabase"])
async def test_shadow_reads_find_the_one_tenant_that_drifted(
    mode: DataBackend, pg_database: Any, rtdb_emulator: Any, rtdb_namespace: str
) -> None:
    await _plant(pg_database, rtdb_emulator, rtdb_namespace)
    settings = make_settings(
        data_backend=mode,
        firebase_database_url=f"https://{rtdb_namespace}.firebaseio.com",
        firebase_database_emulator_host=rtdb_emulator.host,
        supabase_db_url=pg_database.api_dsn,
        storage_policy_shadow=True,
    )
    stream = io.StringIO()
    app = create_app(settings, log_stream=stream)
    shadow: ShadowReads = app.state.shadow_reads
    async with running(app) as client:
        served = {}
        for tenant in (EQUAL, DRIFTED, NOWHERE):
            response = await client.get("/api/v1/settings/storage_policy", headers=user(tenant))
            assert response.status_code == 200
            served[tenant] = response.json()["data"]
        await shadow.settled()
        assert shadow.counts() == ShadowCounts(offered=3, compared=3, matched=2, mismatched=1)
    # Each mode served its own backend's copy.
    assert served[DRIFTED]["operational"] == ("cloud" if mode == "rtdb" else "local")
    assert served[EQUAL]["operational"] == "local"
    assert served[NOWHERE] is None
    logged = [json.loads(line) for line in stream.getvalue().splitlines()]
    mismatches = [line for line in logged if line["event"] == MISMATCH_EVENT]
    other = "supabase" if mode == "rtdb" else "rtdb"
    assert [(m["tenant_id"], m["primary"], m["shadow"], m["fields"]) for m in mismatches] == [
        (DRIFTED, mode, other, ["operational"])
    ]
    assert AUTHOR not in stream.getvalue()


async def test_a_distant_rtdb_shadow_delays_no_answer_and_shutdown_cancels_its_read(
    pg_database: Any, rtdb_emulator: Any, rtdb_namespace: str, rtdb_faults: EmulatorFaults
) -> None:
    """supabase mode, the RTDB shadow answering 20 s late (past its store's 5 s timeout): the reads are
    answered from PostgreSQL while the first shadow read is still waiting, the queue of one drops the
    rest, and shutdown cancels the read in flight (no warning, no pending task)."""
    await _plant(pg_database, rtdb_emulator, rtdb_namespace)
    rtdb_faults.latency(20_000)
    settings = make_settings(
        data_backend="supabase",
        firebase_database_url=f"https://{rtdb_namespace}.firebaseio.com",
        firebase_database_emulator_host=rtdb_emulator.host,
        supabase_db_url=pg_database.api_dsn,
        storage_policy_shadow=True,
        storage_policy_shadow_queue=1,
        storage_policy_shadow_workers=1,
    )
    stream = io.StringIO()
    app = create_app(settings, log_stream=stream)
    shadow: ShadowReads = app.state.shadow_reads
    async with running(app) as client:
        for _ in range(5):
            response = await client.get("/api/v1/settings/storage_policy", headers=user(EQUAL))
            assert (response.status_code, response.headers["etag"]) == (200, '"1"')
        # Every answer is in; the other backend has not answered (nor timed out) once.
        assert shadow.counts() == ShadowCounts(offered=5, dropped=3)
    summary = json.loads(stream.getvalue().splitlines()[-1])
    assert (summary["event"], summary["unfinished"], summary["failed"]) == (SUMMARY_EVENT, 2, 0)
