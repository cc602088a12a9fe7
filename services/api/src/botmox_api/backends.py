"""What the application needs from the composed stores (``stores.factory.StoreSet``).

Declared as a protocol so tests can hand the app any store set of this shape; production builds
the real one with ``stores.factory.build_stores`` from the configuration.
"""

from __future__ import annotations

from typing import Protocol

from botmox_api.config import ApiSettings
from botmox_api.model import Readiness
from botmox_api.stores.protocols import SettingsStore, StoragePolicyStore


class StoreSetLike(Protocol):
    @property
    def settings(self) -> SettingsStore: ...
    @property
    def storage_policy(self) -> StoragePolicyStore: ...
    @property
    def supabase_configured(self) -> bool: ...
    @property
    def rtdb_configured(self) -> bool: ...

    async def check_supabase(self) -> Readiness: ...
    async def check_rtdb(self) -> Readiness: ...
    async def aclose(self) -> None: ...


def build_store_set(settings: ApiSettings) -> StoreSetLike:
    """The stores for this configuration; no I/O. Raises ``ValueError`` naming a bad variable."""
    from botmox_api.stores.factory import build_stores

    return build_stores(
        data_backend=settings.data_backend,
        supabase_db_url=settings.secret("supabase_db_url"),
        supabase_url=settings.supabase_url,
        supabase_anon_key=settings.supabase_anon_key,
        supabase_jwt_secret=settings.secret("supabase_jwt_secret"),
        supabase_jwt_audience=settings.supabase_jwt_audience,
        firebase_database_url=settings.firebase_database_url,
        firebase_project_id=settings.firebase_project_id,
        google_application_credentials=settings.google_application_credentials,
        firebase_database_emulator_host=settings.firebase_database_emulator_host,
    )
