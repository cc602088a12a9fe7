"""Backend faults through the API: a store that goes away answers 502 in the envelope for the paths
routed to it, the other paths keep working, the same app recovers when the backend comes back, and
no document is left half-written (after the fault the stored document is the last acknowledged
write, with its version), and an RTDB write whose answer is lost is applied once."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, Final

import httpx
import pytest
from api_support import client_for, data, error_code, make_settings, user

from botmox_api.stores._rtdb import resolve_rtdb_target, settings_path, storage_policy_path
from botmox_api.stores.protocols import StoreSet
from botmox_api.stores.rtdb_settings import RtdbSettingsStore
from botmox_api.stores.rtdb_storage_policy import RtdbStoragePolicyStore
from botmox_api.stores.unconfigured import UnconfiguredStoragePolicyStore
from harness.fixtures.rtdb import EmulatorFaults
from harness.postgres.migrated import PgDatabase, PrivatePostgres
from harness.rtdb.process import RtdbEmulatorProcess

pytestmark = pytest.mark.slow

POLICY: Final = "/api/v1/settings/storage_policy"
ALERTS: Final = "/api/v1/settings/alerts"
HEADERS: Final = user("faults", sub="faults-user")


def _emulator_overrides(emulator: RtdbEmulatorProcess, namespace: str) -> dict[str, Any]:
    return {
        "firebase_database_url": f"https://{namespace}.firebaseio.com",
        "firebase_database_emulator_host": emulator.host,
    }


async def _acknowledged_writes(client: httpx.AsyncClient) -> tuple[Any, str, Any]:
    """Two policy writes and one settings write that succeed; returns what the last ones stored."""
    first = await client.put(POLICY, json={"operational": "local"}, headers=HEADERS)
    assert first.status_code == 200, first.text
    second = await client.patch(POLICY, json={"sync": {"enabled": True}}, headers=HEADERS)
    assert second.status_code == 200, second.text
    assert second.headers["ETag"] == '"2"'
    alerts = await client.patch(ALERTS, json={"warning_days": 7}, headers=HEADERS)
    assert alerts.status_code == 200, alerts.text
    return data(second), second.headers["ETag"], data(alerts)


def _assert_failed(response: httpx.Response, code: str, message: str) -> None:
    assert response.status_code == 502, response.text
    assert error_code(response) == code
    assert response.json()["error"]["message"] == message
    assert response.json()["error"]["details"]["reason"]


async def _assert_stored(client: httpx.AsyncClient, policy: Any, etag: str, alerts: Any) -> None:
    got = await client.get(POLICY, headers=HEADERS)
    assert got.status_code == 200, got.text
    assert data(got) == policy
    assert got.headers["ETag"] == etag
    node = await client.get(ALERTS, headers=HEADERS)
    assert node.status_code == 200, node.text
    assert data(node) == alerts


@pytest.fixture
async def supabase_on_private_postgres(
    postgres_private: PrivatePostgres, rtdb_emulator: RtdbEmulatorProcess, rtdb_namespace: str
) -> AsyncIterator[httpx.AsyncClient]:
    settings = make_settings(
        data_backend="supabase",
        supabase_db_url=postgres_private.database.api_dsn,
        **_emulator_overrides(rtdb_emulator, rtdb_namespace),
    )
    async with client_for(settings) as client:
        yield client


async def test_postgres_down_fails_storage_policy_only_and_recovers_without_a_rebuild(
    supabase_on_private_postgres: httpx.AsyncClient, postgres_private: PrivatePostgres
) -> None:
    client = supabase_on_private_postgres
    policy, etag, alerts = await _acknowledged_writes(client)

    postgres_private.stop()
    try:
        _assert_failed(
            await client.get(POLICY, headers=HEADERS),
            "SUPABASE_QUERY_FAILED",
            "Failed to read storage policy from Supabase",
        )
        _assert_failed(
            await client.put(POLICY, json={"operational": "cloud"}, headers=HEADERS),
            "SUPABASE_QUERY_FAILED",
            "Failed to write storage policy to Supabase",
        )
        _assert_failed(
            await client.patch(
                POLICY, json={"sync": {"enabled": False}}, headers=HEADERS | {"If-Match": etag}
            ),
            "SUPABASE_QUERY_FAILED",
            "Failed to write storage policy to Supabase",
        )
        # Every other settings path lives in RTDB and does not notice.
        written = await client.patch(ALERTS, json={"enabled": True}, headers=HEADERS)
        assert written.status_code == 200, written.text
        alerts = data(written)
        read = await client.get(ALERTS, headers=HEADERS)
        assert read.status_code == 200, read.text
    finally:
        postgres_private.start()

    # The same app (same pool) serves again; nothing of the failed writes was stored.
    await _assert_stored(client, policy, etag, alerts)
    after = await client.patch(POLICY, json={"operational": "cloud"}, headers=HEADERS | {"If-Match": etag})
    assert after.status_code == 200, after.text
    assert after.headers["ETag"] == '"3"'
    assert data(after)["operational"] == "cloud"
    assert data(after)["sync"] == {"enabled": True}


@pytest.fixture(params=["rtdb", "supabase"])
async def api_on_private_rtdb(
    request: pytest.FixtureRequest, rtdb_private: RtdbEmulatorProcess
) -> AsyncIterator[tuple[str, httpx.AsyncClient]]:
    mode = str(request.param)
    overrides = _emulator_overrides(rtdb_private, "faults")
    if mode == "supabase":
        database: PgDatabase = request.getfixturevalue("pg_database")
        overrides["supabase_db_url"] = database.api_dsn
    async with client_for(make_settings(data_backend=mode, **overrides)) as client:
        yield mode, client


async def test_rtdb_down_fails_rtdb_paths_and_recovers(
    api_on_private_rtdb: tuple[str, httpx.AsyncClient], rtdb_private: RtdbEmulatorProcess
) -> None:
    mode, client = api_on_private_rtdb
    policy, etag, alerts = await _acknowledged_writes(client)

    rtdb_private.stop()
    try:
        _assert_failed(
            await client.patch(ALERTS, json={"enabled": True}, headers=HEADERS),
            "RTDB_QUERY_FAILED",
            "Failed to write settings to RTDB",
        )
        _assert_failed(
            await client.get(ALERTS, headers=HEADERS),
            "RTDB_QUERY_FAILED",
            "Failed to read settings from RTDB",
        )
        policy_read = await client.get(POLICY, headers=HEADERS)
        policy_write = await client.put(POLICY, json={"operational": "cloud"}, headers=HEADERS)
        if mode == "rtdb":
            _assert_failed(policy_read, "RTDB_QUERY_FAILED", "Failed to read storage policy from RTDB")
            _assert_failed(policy_write, "RTDB_QUERY_FAILED", "Failed to write storage policy to RTDB")
        else:
            # In supabase mode storage_policy lives in PostgreSQL and does not notice.
            assert policy_read.status_code == 200, policy_read.text
            assert policy_write.status_code == 200, policy_write.text
            policy, etag = data(policy_write), policy_write.headers["ETag"]
    finally:
        rtdb_private.start()

    await _assert_stored(client, policy, etag, alerts)


@pytest.fixture
async def api_on_stores_that_wait_1s(
    rtdb_emulator: RtdbEmulatorProcess, rtdb_namespace: str
) -> AsyncIterator[httpx.AsyncClient]:
    """The API in rtdb mode, its RTDB stores waiting 1 s for an answer (5 s by default)."""
    overrides = _emulator_overrides(rtdb_emulator, rtdb_namespace)
    target = resolve_rtdb_target(
        database_url=overrides["firebase_database_url"],
        project_id=None,
        emulator_host=overrides["firebase_database_emulator_host"],
        credentials_path=None,
    )
    assert target is not None
    stores = StoreSet(
        settings=RtdbSettingsStore(target, http_timeout_s=1.0),
        storage_policy=RtdbStoragePolicyStore(target, http_timeout_s=1.0),
        supabase=UnconfiguredStoragePolicyStore("supabase", ["SUPABASE_DB_URL"]),
        supabase_configured=False,
        rtdb_configured=True,
    )
    async with client_for(make_settings(data_backend="rtdb", **overrides), stores) as client:
        yield client


async def test_rtdb_answers_lost_after_the_write_landed(
    api_on_stores_that_wait_1s: httpx.AsyncClient, rtdb_faults: EmulatorFaults
) -> None:
    client = api_on_stores_that_wait_1s
    first = await client.put(POLICY, json={"operational": "local"}, headers=HEADERS)
    assert first.headers["ETag"] == '"1"', first.text

    # The policy write landed, its answer was lost: the API still answers with it, not 412.
    rtdb_faults.drop_answer("PUT", storage_policy_path("faults"))
    patched = await client.patch(
        POLICY, json={"sync": {"enabled": True}}, headers=HEADERS | {"If-Match": '"1"'}
    )
    assert patched.status_code == 200, patched.text
    assert patched.headers["ETag"] == '"2"'
    assert "write_id" not in data(patched)
    assert data(patched) == {
        **data(first),
        "sync": {"enabled": True},
        "updated_at": data(patched)["updated_at"],
    }

    # A generic write whose answer is lost is a 502, and it is not sent again.
    rtdb_faults.drop_answer("PATCH", settings_path("faults", ("alerts",)))
    lost = await client.patch(ALERTS, json={"warning_days": 7, "channel": "mail"}, headers=HEADERS)
    _assert_failed(lost, "RTDB_QUERY_FAILED", "Failed to write settings to RTDB")
    assert rtdb_faults.armed() == []

    # What landed is served as usual; the policy's write id (store bookkeeping) is never served.
    whole = data(await client.get("/api/v1/settings", headers=HEADERS))
    assert whole["storage_policy"] == data(patched)
    assert {key: whole["alerts"][key] for key in ("warning_days", "channel")} == {
        "warning_days": 7,
        "channel": "mail",
    }
