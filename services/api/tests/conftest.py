"""API test fixtures.

``api`` is the contract fixture: the real application on the REAL stores, parametrized over both
modes. ``rtdb`` points every path at the harness's RTDB emulator (a fresh namespace per test);
``supabase`` additionally routes ``storage_policy`` to the harness's PostgreSQL (a fresh database per
test, connected as ``botmox_api``). ``fake_api`` is the same app on in-memory stores, for tests of
the HTTP layer alone.
"""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

# --import-mode=importlib keeps test directories off sys.path; the shared helpers live here.
sys.path.insert(0, str(Path(__file__).parent))

from api_fakes import MemoryStoreSet
from api_support import client_for, make_settings

MODES = ("rtdb", "supabase")


@pytest.fixture(params=MODES)
def api_mode(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def real_settings_overrides(request: pytest.FixtureRequest, api_mode: str) -> dict[str, object]:
    emulator = request.getfixturevalue("rtdb_emulator")
    namespace = request.getfixturevalue("rtdb_namespace")
    overrides: dict[str, object] = {
        "data_backend": api_mode,
        "firebase_database_url": f"https://{namespace}.firebaseio.com",
        "firebase_database_emulator_host": emulator.host,
    }
    if api_mode == "supabase":
        overrides["supabase_db_url"] = request.getfixturevalue("pg_database").api_dsn
    return overrides


@pytest.fixture
async def api(real_settings_overrides: dict[str, object]) -> AsyncIterator[httpx.AsyncClient]:
    async with client_for(make_settings(**real_settings_overrides)) as client:
        yield client


@pytest.fixture
def memory_stores() -> MemoryStoreSet:
    return MemoryStoreSet()


@pytest.fixture
async def fake_api(memory_stores: MemoryStoreSet) -> AsyncIterator[httpx.AsyncClient]:
    async with client_for(make_settings(), memory_stores) as client:
        yield client
