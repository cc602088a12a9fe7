"""API test fixtures.

``api`` is the contract fixture: the real application on the REAL stores, parametrized over both
modes. ``rtdb`` points every path at the harness's RTDB emulator (a fresh namespace per test);
``supabase`` additionally routes ``storage_policy`` to the harness's PostgreSQL (a fresh database per
test, connected as ``botmox_api``). ``supabase-rest`` is ``supabase`` over the REST transport: its
PostgREST calls are answered by the harness's PostgREST stand-in from that same database (as
``authenticated``, with the minted token's claims); a suite opts in by overriding ``api_mode`` with
``REST_MODES``. ``fake_api`` is the same app on in-memory stores, for tests of the HTTP layer alone.
"""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

# --import-mode=importlib keeps test directories off sys.path; the shared helpers live here.
sys.path.insert(0, str(Path(__file__).parent))

from api_fakes import memory_store_set
from api_support import JWT_SECRET, REST_MODE, client_for, make_settings

from botmox_api.config import ApiSettings
from botmox_api.stores.factory import build_stores
from botmox_api.stores.protocols import StoreSet
from botmox_api.stores.supabase_rest import RestStoragePolicyStore
from harness.postgres.postgrest import PostgrestStandIn

MODES = ("rtdb", "supabase")
SUPABASE_URL = "http://supabase.test"
ANON_KEY = "anon-key-for-the-api-tests"


@pytest.fixture(params=MODES)
def api_mode(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def real_settings_overrides(request: pytest.FixtureRequest, api_mode: str) -> dict[str, object]:
    emulator = request.getfixturevalue("rtdb_emulator")
    namespace = request.getfixturevalue("rtdb_namespace")
    overrides: dict[str, object] = {
        "data_backend": "supabase" if api_mode == REST_MODE else api_mode,
        "firebase_database_url": f"https://{namespace}.firebaseio.com",
        "firebase_database_emulator_host": emulator.host,
    }
    if api_mode == "supabase":
        overrides["supabase_db_url"] = request.getfixturevalue("pg_database").api_dsn
    if api_mode == REST_MODE:
        overrides |= {"supabase_url": SUPABASE_URL, "supabase_anon_key": ANON_KEY}
    return overrides


async def _rest_stand_in_stores(settings: ApiSettings, admin_dsn: str) -> StoreSet:
    """The stores the configuration builds, with the REST transport's HTTP going to the stand-in."""
    built = build_stores(
        data_backend="supabase",
        supabase_url=settings.supabase_url,
        supabase_anon_key=settings.supabase_anon_key,
        supabase_jwt_secret=settings.secret("supabase_jwt_secret"),
        firebase_database_url=settings.firebase_database_url,
        firebase_database_emulator_host=settings.firebase_database_emulator_host,
    )
    assert isinstance(built.storage_policy, RestStoragePolicyStore)
    await built.storage_policy.aclose()  # replaced below; it never opened a connection
    stand_in = PostgrestStandIn(admin_dsn, anon_key=ANON_KEY, jwt_secret=JWT_SECRET)
    rest = RestStoragePolicyStore(
        SUPABASE_URL,
        ANON_KEY,
        JWT_SECRET,
        jwt_audience=settings.supabase_jwt_audience,
        transport=httpx.MockTransport(stand_in),
    )
    return dataclasses.replace(built, storage_policy=rest, supabase=rest)


@pytest.fixture
async def api(
    request: pytest.FixtureRequest, api_mode: str, real_settings_overrides: dict[str, object]
) -> AsyncIterator[httpx.AsyncClient]:
    settings = make_settings(**real_settings_overrides)
    stores = None
    if api_mode == REST_MODE:
        stores = await _rest_stand_in_stores(settings, request.getfixturevalue("pg_database").admin_dsn)
    async with client_for(settings, stores) as client:
        yield client


@pytest.fixture
def memory_stores() -> StoreSet:
    return memory_store_set()


@pytest.fixture
async def fake_api(memory_stores: StoreSet) -> AsyncIterator[httpx.AsyncClient]:
    async with client_for(make_settings(), memory_stores) as client:
        yield client
