"""Compose the stores from the configuration: ``build_stores(...)`` → ``StoreSet``.

Routing (``docs/contracts/api-v1.md``): generic settings always live in RTDB; ``storage_policy``
lives in RTDB in ``rtdb`` mode and in Supabase in ``supabase`` mode, over SQL when ``SUPABASE_DB_URL``
is set, else over REST when ``SUPABASE_URL`` and ``SUPABASE_SERVICE_ROLE_KEY`` are. A backend without its
variables gets an unconfigured store (503 ``*_CONFIG_ERROR`` naming the missing variables).

Building does no network or file I/O: connections open on first use, so the API starts with every
store down. A Supabase store is built in ``rtdb`` mode too, when configured, so that readiness
(``REQUIRE_SUPABASE_READY``) and health can report on it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from botmox_api.stores._rtdb_target import resolve_rtdb_target
from botmox_api.stores.protocols import Readiness, SettingsStore, StoragePolicyStore
from botmox_api.stores.rtdb_settings import RtdbSettingsStore
from botmox_api.stores.rtdb_storage_policy import RtdbStoragePolicyStore
from botmox_api.stores.supabase_rest import RestStoragePolicyStore
from botmox_api.stores.supabase_sql import SqlStoragePolicyStore
from botmox_api.stores.unconfigured import UnconfiguredSettingsStore, UnconfiguredStoragePolicyStore

DataBackend = Literal["rtdb", "supabase"]


@dataclass(frozen=True, slots=True)
class StoreSet:
    settings: SettingsStore
    """Generic settings paths; always RTDB."""
    storage_policy: StoragePolicyStore
    """The ``storage_policy`` path, in the store the active mode routes it to."""
    supabase: StoragePolicyStore
    """The Supabase storage-policy store (unconfigured stand-in when not configured)."""
    supabase_configured: bool
    rtdb_configured: bool

    async def check_supabase(self) -> Readiness:
        return await self.supabase.check_ready()

    async def check_rtdb(self) -> Readiness:
        return await self.settings.check_ready()

    async def aclose(self) -> None:
        stores: list[SettingsStore | StoragePolicyStore] = [self.settings, self.storage_policy]
        if self.supabase is not self.storage_policy:
            stores.append(self.supabase)
        for store in stores:
            await store.aclose()


def _supabase_store(
    db_url: str | None, url: str | None, service_role_key: str | None
) -> tuple[StoragePolicyStore, bool]:
    if db_url:
        return SqlStoragePolicyStore(db_url), True
    if url and service_role_key:
        return RestStoragePolicyStore(url, service_role_key), True
    missing = ["SUPABASE_DB_URL"]
    if not url:
        missing.append("SUPABASE_URL")
    if not service_role_key:
        missing.append("SUPABASE_SERVICE_ROLE_KEY")
    return UnconfiguredStoragePolicyStore("supabase", missing), False


def build_stores(
    *,
    data_backend: DataBackend = "rtdb",
    supabase_db_url: str | None = None,
    supabase_url: str | None = None,
    supabase_service_role_key: str | None = None,
    firebase_database_url: str | None = None,
    firebase_project_id: str | None = None,
    google_application_credentials: str | None = None,
    firebase_database_emulator_host: str | None = None,
) -> StoreSet:
    """Raises ``InvalidRtdbConfiguration`` (a ``ValueError`` naming the variable) when the RTDB
    variables are set but unusable; the config layer should turn it into a start-up error."""
    supabase, supabase_configured = _supabase_store(supabase_db_url, supabase_url, supabase_service_role_key)
    target = resolve_rtdb_target(
        database_url=firebase_database_url or None,
        project_id=firebase_project_id or None,
        emulator_host=firebase_database_emulator_host or None,
        credentials_path=google_application_credentials or None,
    )
    settings: SettingsStore
    policy: StoragePolicyStore = supabase
    if target is None:
        missing = ["FIREBASE_DATABASE_URL", "FIREBASE_PROJECT_ID"]
        settings = UnconfiguredSettingsStore("rtdb", missing)
        if data_backend == "rtdb":
            policy = UnconfiguredStoragePolicyStore("rtdb", missing)
    else:
        settings = RtdbSettingsStore(target)
        if data_backend == "rtdb":
            policy = RtdbStoragePolicyStore(target)
    return StoreSet(
        settings=settings,
        storage_policy=policy,
        supabase=supabase,
        supabase_configured=supabase_configured,
        rtdb_configured=target is not None,
    )
