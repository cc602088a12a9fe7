"""``build_stores``: routing by DATA_BACKEND and configuration, no I/O at build time, unconfigured
stand-ins that name the missing variables."""

from __future__ import annotations

from typing import Any

import pytest

from botmox_api.config import ApiSettings
from botmox_api.model import DataBackend, StoragePolicyChanges, StoreNotConfigured, StoreQueryFailed
from botmox_api.stores._rtdb import InvalidRtdbConfiguration, RtdbTarget, resolve_rtdb_target
from botmox_api.stores.factory import (
    BackfillNotConfigured,
    BackfillStores,
    ShadowBackendNotConfigured,
    backfill_stores,
    build_stores,
)
from botmox_api.stores.protocols import StoreSet
from botmox_api.stores.rtdb_settings import RtdbSettingsStore
from botmox_api.stores.rtdb_storage_policy import RtdbStoragePolicyStore
from botmox_api.stores.supabase_rest import RestStoragePolicyStore
from botmox_api.stores.supabase_sql import SqlStoragePolicyStore
from botmox_api.stores.unconfigured import UnconfiguredSettingsStore, UnconfiguredStoragePolicyStore

# Nothing listens here; building must not notice.
DEAD_DB = "postgresql://botmox_api:pw@127.0.0.1:9/postgres"
DEAD_URL = "http://127.0.0.1:9"
EMULATOR = {"firebase_database_emulator_host": "127.0.0.1:9", "firebase_project_id": "demo-botmox"}


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        (
            {"database_url": "https://proj-default-rtdb.firebaseio.com"},
            RtdbTarget("https://proj-default-rtdb.firebaseio.com", False, "/creds.json"),
        ),
        (
            {"project_id": "proj"},
            RtdbTarget("https://proj-default-rtdb.firebaseio.com", False, "/creds.json"),
        ),
        (
            {
                "database_url": "https://db.europe-west1.firebasedatabase.app",
                "emulator_host": "127.0.0.1:9000",
            },
            RtdbTarget("http://127.0.0.1:9000?ns=db", True, None),
        ),
        (
            {"database_url": "http://127.0.0.1:9000?ns=ns1", "emulator_host": "localhost:9100"},
            RtdbTarget("http://localhost:9100?ns=ns1", True, None),
        ),
        (
            {"database_url": "http://127.0.0.1:9000/?ns=ns2"},
            RtdbTarget("http://127.0.0.1:9000?ns=ns2", True, None),
        ),
        (
            {"project_id": "demo", "emulator_host": "127.0.0.1:9000"},
            RtdbTarget("http://127.0.0.1:9000?ns=demo-default-rtdb", True, None),
        ),
    ],
)
def test_rtdb_target_resolution(kwargs: dict[str, str], expected: RtdbTarget) -> None:
    arguments: dict[str, Any] = {"database_url": None, "project_id": None, "emulator_host": None}
    arguments.update(kwargs)
    assert resolve_rtdb_target(**arguments, credentials_path="/creds.json") == expected


def test_rtdb_target_absent_without_url_or_project() -> None:
    assert (
        resolve_rtdb_target(database_url=None, project_id=None, emulator_host="h:1", credentials_path=None)
        is None
    )


@pytest.mark.parametrize(
    ("kwargs", "variable"),
    [
        ({"database_url": "ftp://x", "emulator_host": None}, "FIREBASE_DATABASE_URL"),
        (
            {"database_url": "https://x.firebaseio.com", "emulator_host": "http://h:1"},
            "FIREBASE_DATABASE_EMULATOR_HOST",
        ),
    ],
)
def test_rtdb_target_invalid(kwargs: dict[str, str | None], variable: str) -> None:
    with pytest.raises(InvalidRtdbConfiguration, match=variable):
        resolve_rtdb_target(**kwargs, project_id=None, credentials_path=None)


async def test_rtdb_mode_routes_everything_to_rtdb() -> None:
    stores = build_stores(data_backend="rtdb", supabase_db_url=DEAD_DB, **EMULATOR)
    try:
        assert isinstance(stores.settings, RtdbSettingsStore)
        assert isinstance(stores.storage_policy, RtdbStoragePolicyStore)
        assert isinstance(stores.supabase, SqlStoragePolicyStore)
        assert (stores.rtdb_configured, stores.supabase_configured) == (True, True)
    finally:
        await stores.aclose()


# The REST transport needs no service-role key: the anon key for the gateway, the JWT secret to mint.
REST: dict[str, str] = {
    "supabase_url": DEAD_URL,
    "supabase_anon_key": "anon",
    "supabase_jwt_secret": "s" * 32,
}


@pytest.mark.parametrize(
    ("supabase", "kind"),
    [
        ({"supabase_db_url": DEAD_DB}, SqlStoragePolicyStore),
        ({"supabase_db_url": DEAD_DB, **REST}, SqlStoragePolicyStore),
        (REST, RestStoragePolicyStore),
    ],
)
async def test_supabase_mode_prefers_sql_then_rest(supabase: dict[str, str], kind: type) -> None:
    stores = build_stores(data_backend="supabase", **supabase, **EMULATOR)
    try:
        assert isinstance(stores.storage_policy, kind)
        assert stores.storage_policy is stores.supabase
        assert isinstance(stores.settings, RtdbSettingsStore)
        assert stores.supabase_configured is True
    finally:
        await stores.aclose()


@pytest.mark.parametrize(
    ("supabase", "missing"),
    [
        ({}, ["SUPABASE_DB_URL", "SUPABASE_URL", "SUPABASE_ANON_KEY", "SUPABASE_JWT_SECRET"]),
        ({"supabase_url": DEAD_URL}, ["SUPABASE_DB_URL", "SUPABASE_ANON_KEY", "SUPABASE_JWT_SECRET"]),
        (
            {"supabase_anon_key": "k", "supabase_db_url": ""},
            ["SUPABASE_DB_URL", "SUPABASE_URL", "SUPABASE_JWT_SECRET"],
        ),
        # A service-role key alone no longer configures the REST transport (it is not accepted at all).
        (
            {"supabase_url": DEAD_URL, "supabase_jwt_secret": "s" * 32},
            ["SUPABASE_DB_URL", "SUPABASE_ANON_KEY"],
        ),
    ],
)
async def test_supabase_mode_without_supabase_names_the_missing_variables(
    supabase: dict[str, str], missing: list[str]
) -> None:
    stores = build_stores(data_backend="supabase", **supabase, **EMULATOR)
    try:
        assert isinstance(stores.storage_policy, UnconfiguredStoragePolicyStore)
        assert stores.supabase_configured is False
        with pytest.raises(StoreNotConfigured) as raised:
            await stores.storage_policy.merge("acme", StoragePolicyChanges(), updated_by="u")
        assert raised.value.backend == "supabase"
        assert raised.value.message == "Supabase is not configured"
        assert raised.value.details == {"missing": missing}
        readiness = await stores.check_supabase()
        assert (readiness.ready, readiness.reason) == (False, "Not configured: missing " + ", ".join(missing))
        # The RTDB side is untouched by the missing Supabase.
        assert isinstance(stores.settings, RtdbSettingsStore)
    finally:
        await stores.aclose()


@pytest.mark.parametrize("mode", ["rtdb", "supabase"])
async def test_without_rtdb_the_rtdb_paths_are_unconfigured(mode: Any) -> None:
    stores = build_stores(data_backend=mode, supabase_db_url=DEAD_DB)
    try:
        assert stores.rtdb_configured is False
        assert isinstance(stores.settings, UnconfiguredSettingsStore)
        with pytest.raises(StoreNotConfigured) as raised:
            await stores.settings.read_tree("acme")
        assert raised.value.backend == "rtdb"
        assert raised.value.message == "RTDB is not configured"
        assert raised.value.details == {"missing": ["FIREBASE_DATABASE_URL", "FIREBASE_PROJECT_ID"]}
        assert (await stores.check_rtdb()).ready is False
        if mode == "rtdb":
            with pytest.raises(StoreNotConfigured):
                await stores.storage_policy.read("acme")
        else:
            assert isinstance(stores.storage_policy, SqlStoragePolicyStore)
    finally:
        await stores.aclose()


async def test_building_reads_no_credentials_file_until_used() -> None:
    stores = build_stores(
        data_backend="rtdb",
        firebase_database_url="https://prod-default-rtdb.firebaseio.com",
        google_application_credentials="/nonexistent/service-account.json",
    )
    try:
        with pytest.raises(StoreQueryFailed) as raised:
            await stores.settings.read_tree("acme")
        assert raised.value.details == {
            "reason": "Cannot read the RTDB credentials file (GOOGLE_APPLICATION_CREDENTIALS)"
        }
    finally:
        await stores.aclose()


async def test_factory_stores_against_the_emulator(rtdb_emulator: Any, rtdb_namespace: str) -> None:
    stores = build_stores(
        data_backend="rtdb",
        firebase_database_url=f"https://{rtdb_namespace}.firebaseio.com",
        firebase_database_emulator_host=rtdb_emulator.host,
    )
    try:
        assert (await stores.check_rtdb()).ready is True
        written = await stores.storage_policy.replace("acme", StoragePolicyChanges(), updated_by="u")
        tree = await stores.settings.read_tree("acme")
        # The raw node carries the version and the write id; the API swaps it for ``to_document()``.
        node = tree["storage_policy"]
        assert isinstance(node, dict)
        assert node == {**written.to_document(), "version": 1, "write_id": node["write_id"]}
    finally:
        await stores.aclose()


# Shadow reads (STORAGE_POLICY_SHADOW): the other backend's storage-policy store.


async def test_shadow_in_rtdb_mode_is_the_supabase_store() -> None:
    stores = build_stores(
        data_backend="rtdb", supabase_db_url=DEAD_DB, storage_policy_shadow=True, **EMULATOR
    )
    try:
        assert isinstance(stores.storage_policy, RtdbStoragePolicyStore)
        assert isinstance(stores.shadow, SqlStoragePolicyStore)
        assert stores.shadow is stores.supabase
    finally:
        await stores.aclose()


@pytest.mark.parametrize("supabase", [{"supabase_db_url": DEAD_DB}, REST])
async def test_shadow_in_supabase_mode_is_an_rtdb_store_of_its_own(supabase: dict[str, str]) -> None:
    stores = build_stores(data_backend="supabase", **supabase, storage_policy_shadow=True, **EMULATOR)
    try:
        assert stores.storage_policy is stores.supabase
        assert isinstance(stores.shadow, RtdbStoragePolicyStore)
        assert stores.shadow.backend == "rtdb"
    finally:
        await stores.aclose()


@pytest.mark.parametrize("mode", ["rtdb", "supabase"])
async def test_no_shadow_store_unless_asked(mode: DataBackend) -> None:
    stores = build_stores(data_backend=mode, supabase_db_url=DEAD_DB, **EMULATOR)
    try:
        assert stores.shadow is None
    finally:
        await stores.aclose()


@pytest.mark.parametrize(
    ("mode", "configured", "message"),
    [
        (
            "rtdb",
            EMULATOR,
            "STORAGE_POLICY_SHADOW=on with DATA_BACKEND=rtdb compares with Supabase, which is not "
            "configured: set SUPABASE_DB_URL, or SUPABASE_URL, SUPABASE_ANON_KEY and SUPABASE_JWT_SECRET",
        ),
        (
            "rtdb",
            {**EMULATOR, "supabase_url": DEAD_URL, "supabase_anon_key": "anon"},  # REST needs all three
            "compares with Supabase, which is not configured",
        ),
        (
            "supabase",
            {"supabase_db_url": DEAD_DB},
            "STORAGE_POLICY_SHADOW=on with DATA_BACKEND=supabase compares with RTDB, which is not "
            "configured: set FIREBASE_DATABASE_URL or FIREBASE_PROJECT_ID",
        ),
    ],
)
def test_shadow_without_the_other_backend_is_refused(
    mode: DataBackend, configured: dict[str, str], message: str
) -> None:
    with pytest.raises(ShadowBackendNotConfigured) as raised:
        build_stores(data_backend=mode, **configured, storage_policy_shadow=True)
    assert message in str(raised.value)
    assert isinstance(raised.value, ValueError)  # the entry point's start-up error (exit 2)


class _Closing:
    def __init__(self, backend: DataBackend, closed: list[str], name: str) -> None:
        self.backend = backend
        self._closed = closed
        self._name = name

    async def aclose(self) -> None:
        self._closed.append(self._name)


async def test_the_store_set_closes_each_store_once_whatever_roles_it_fills() -> None:
    closed: list[str] = []
    settings, rtdb_policy, supabase, rtdb_shadow = (
        _Closing("rtdb", closed, "settings"),
        _Closing("rtdb", closed, "rtdb-policy"),
        _Closing("supabase", closed, "supabase"),
        _Closing("rtdb", closed, "rtdb-shadow"),
    )
    rtdb_mode: Any = {"settings": settings, "storage_policy": rtdb_policy, "supabase": supabase}
    await StoreSet(**rtdb_mode, supabase_configured=True, rtdb_configured=True, shadow=supabase).aclose()
    assert closed == ["settings", "rtdb-policy", "supabase"]
    closed.clear()
    supabase_mode: Any = {"settings": settings, "storage_policy": supabase, "supabase": supabase}
    await StoreSet(
        **supabase_mode, supabase_configured=True, rtdb_configured=True, shadow=rtdb_shadow
    ).aclose()
    assert closed == ["settings", "supabase", "rtdb-shadow"]


# --- The cutover tool's stores.


@pytest.fixture
def no_backend_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (
        "SUPABASE_DB_URL",
        "FIREBASE_DATABASE_URL",
        "FIREBASE_PROJECT_ID",
        "FIREBASE_DATABASE_EMULATOR_HOST",
    ):
        monkeypatch.delenv(name, raising=False)


def _settings(**values: Any) -> ApiSettings:
    return ApiSettings(_env_file=None, **values)  # type: ignore[call-arg]


def test_backfill_stores_are_the_api_store_classes_built_without_io() -> None:
    stores = backfill_stores(_settings(supabase_db_url=DEAD_DB, **EMULATOR), concurrency=7)
    assert isinstance(stores, BackfillStores)
    assert isinstance(stores.rtdb, RtdbStoragePolicyStore)
    assert isinstance(stores.supabase, SqlStoragePolicyStore)
    assert stores.rtdb._read_concurrency == 7
    assert stores.supabase._connect_kwargs["server_settings"]["application_name"] == "botmox-cutover"


@pytest.mark.parametrize(
    ("values", "missing"),
    [
        ({}, ["SUPABASE_DB_URL", "FIREBASE_DATABASE_URL (or FIREBASE_PROJECT_ID)"]),
        (EMULATOR, ["SUPABASE_DB_URL"]),
        # The REST transport's variables do not do: the backfill functions are SQL only.
        (
            {
                **EMULATOR,
                "supabase_url": DEAD_URL,
                "supabase_anon_key": "anon",
                "supabase_jwt_secret": "s" * 32,
            },
            ["SUPABASE_DB_URL"],
        ),
        ({"supabase_db_url": DEAD_DB}, ["FIREBASE_DATABASE_URL (or FIREBASE_PROJECT_ID)"]),
    ],
    ids=["nothing", "no-db-url", "rest-only", "no-rtdb"],
)
@pytest.mark.usefixtures("no_backend_variables")
def test_backfill_stores_name_the_missing_variables(values: dict[str, Any], missing: list[str]) -> None:
    with pytest.raises(BackfillNotConfigured) as raised:
        backfill_stores(_settings(**values))
    assert raised.value.missing == missing
    assert str(raised.value) == "The cutover tool needs " + " and ".join(missing) + " (not set)"


def test_backfill_stores_refuse_unusable_rtdb_variables() -> None:
    with pytest.raises(InvalidRtdbConfiguration, match="FIREBASE_DATABASE_URL"):
        backfill_stores(_settings(supabase_db_url=DEAD_DB, firebase_database_url="ftp://x"))
