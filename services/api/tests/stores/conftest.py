"""Stores under test, on the harness's real PostgreSQL and RTDB emulator.

``policy_store`` is parametrized over both storage-policy implementations that run on real
servers (RTDB, Supabase over SQL), so one behaviour suite covers both. The REST transport has its
own recorded-exchange tests (``test_supabase_rest_recorded.py``).
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest

from botmox_api.stores._rtdb import RtdbTarget, resolve_rtdb_target
from botmox_api.stores.protocols import StoragePolicyStore
from botmox_api.stores.rtdb_settings import RtdbSettingsStore
from botmox_api.stores.rtdb_storage_policy import RtdbStoragePolicyStore
from botmox_api.stores.supabase_sql import SqlStoragePolicyStore


def emulator_target(host: str, namespace: str) -> RtdbTarget:
    """The configuration the API gets in tests: emulator host + a production-style URL."""
    target = resolve_rtdb_target(
        database_url=f"https://{namespace}.firebaseio.com",
        project_id=None,
        emulator_host=host,
        credentials_path=None,
    )
    assert target is not None
    return target


def new_tenant() -> str:
    return f"t-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def tenant() -> str:
    return new_tenant()


@pytest.fixture
def rtdb_target(rtdb_emulator: Any, rtdb_namespace: str) -> RtdbTarget:
    return emulator_target(rtdb_emulator.host, rtdb_namespace)


@pytest.fixture
async def settings_store(rtdb_target: RtdbTarget) -> AsyncIterator[RtdbSettingsStore]:
    store = RtdbSettingsStore(rtdb_target)
    yield store
    await store.aclose()


@pytest.fixture(params=["rtdb", "sql"])
def policy_store_unopened(request: pytest.FixtureRequest) -> StoragePolicyStore:
    """Built without I/O (as the factory does); the fixtures it needs depend on the backend."""
    if request.param == "rtdb":
        emulator = request.getfixturevalue("rtdb_emulator")
        namespace = request.getfixturevalue("rtdb_namespace")
        return RtdbStoragePolicyStore(emulator_target(emulator.host, namespace))
    database = request.getfixturevalue("pg_database")
    return SqlStoragePolicyStore(database.api_dsn)


@pytest.fixture
async def policy_store(policy_store_unopened: StoragePolicyStore) -> AsyncIterator[StoragePolicyStore]:
    yield policy_store_unopened
    await policy_store_unopened.aclose()
