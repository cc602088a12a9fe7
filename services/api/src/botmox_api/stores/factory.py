"""Compose the stores from the configuration: ``stores_for(settings)`` (or ``build_stores(...)``)
→ ``StoreSet``, the one store set the application holds (tests hand it a ``StoreSet`` of their own).

Routing (``docs/contracts/api-v1.md``): generic settings always live in RTDB; ``storage_policy``
lives in RTDB in ``rtdb`` mode and in Supabase in ``supabase`` mode, over SQL when ``SUPABASE_DB_URL``
is set, else over REST when ``SUPABASE_URL``, ``SUPABASE_ANON_KEY`` and ``SUPABASE_JWT_SECRET`` are
(the REST store mints a per-call ``authenticated`` token; no service-role key). A backend without its
variables gets an unconfigured store (503 ``*_CONFIG_ERROR`` naming the missing variables).

Building does no network or file I/O: connections open on first use, so the API starts with every
store down. A Supabase store is built in ``rtdb`` mode too, when configured, so that readiness
(``REQUIRE_SUPABASE_READY``) and health can report on it.

With ``STORAGE_POLICY_SHADOW=on`` the set also holds the OTHER backend's storage-policy store
(``StoreSet.shadow``), which shadow reads compare with: in ``rtdb`` mode the Supabase store built
anyway, in ``supabase`` mode an RTDB store of its own. A shadow without its backend configured is
refused (``ShadowBackendNotConfigured``): it would only count failures.

The cutover tool's stores (``backfill_stores(settings)``): the same two classes, built from the same
variables, both required: RTDB as configured, Supabase over SQL only (``SUPABASE_DB_URL``, an
administrator's DSN; the backfill functions are SQL functions only administrators may call).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from botmox_api.config import ApiSettings
from botmox_api.model import BACKEND_TITLES, DataBackend
from botmox_api.stores._rtdb import resolve_rtdb_target
from botmox_api.stores._rtdb_rest import DEFAULT_MAX_CONNECTIONS
from botmox_api.stores.agent_link_sql import SqlAgentLinkStore
from botmox_api.stores.agents_sql import SqlAgentStore
from botmox_api.stores.protocols import AgentStore, SettingsStore, StoragePolicyStore, StoreSet
from botmox_api.stores.rtdb_settings import RtdbSettingsStore
from botmox_api.stores.rtdb_storage_policy import DEFAULT_READ_CONCURRENCY, RtdbStoragePolicyStore
from botmox_api.stores.supabase_rest import RestStoragePolicyStore
from botmox_api.stores.supabase_sql import DEFAULT_STATEMENT_CACHE_SIZE, SqlStoragePolicyStore
from botmox_api.stores.unconfigured import (
    AGENTS_MISSING,
    UnconfiguredAgentStore,
    UnconfiguredSettingsStore,
    UnconfiguredStoragePolicyStore,
)

_RTDB_VARIABLES: Final = "FIREBASE_DATABASE_URL or FIREBASE_PROJECT_ID"
_SUPABASE_VARIABLES: Final = "SUPABASE_DB_URL, or SUPABASE_URL, SUPABASE_ANON_KEY and SUPABASE_JWT_SECRET"


class ShadowBackendNotConfigured(ValueError):
    """``STORAGE_POLICY_SHADOW=on`` without the other backend's variables; the message names them."""

    def __init__(self, data_backend: DataBackend) -> None:
        other: DataBackend = "supabase" if data_backend == "rtdb" else "rtdb"
        variables = _SUPABASE_VARIABLES if other == "supabase" else _RTDB_VARIABLES
        super().__init__(
            f"STORAGE_POLICY_SHADOW=on with DATA_BACKEND={data_backend} compares with "
            f"{BACKEND_TITLES[other]}, which is not configured: set {variables}"
        )


def _supabase_store(
    db_url: str | None,
    db_statement_cache_size: int,
    url: str | None,
    anon_key: str | None,
    jwt_secret: str | None,
    jwt_audience: str,
) -> tuple[StoragePolicyStore, bool]:
    if db_url:
        return SqlStoragePolicyStore(db_url, statement_cache_size=db_statement_cache_size), True
    if url and anon_key and jwt_secret:
        return RestStoragePolicyStore(url, anon_key, jwt_secret, jwt_audience=jwt_audience), True
    rest = {"SUPABASE_URL": url, "SUPABASE_ANON_KEY": anon_key, "SUPABASE_JWT_SECRET": jwt_secret}
    missing = ["SUPABASE_DB_URL", *(name for name, value in rest.items() if not value)]
    return UnconfiguredStoragePolicyStore("supabase", missing), False


def build_stores(
    *,
    data_backend: DataBackend = "rtdb",
    supabase_db_url: str | None = None,
    supabase_db_statement_cache_size: int = DEFAULT_STATEMENT_CACHE_SIZE,
    supabase_url: str | None = None,
    supabase_anon_key: str | None = None,
    supabase_jwt_secret: str | None = None,
    supabase_jwt_audience: str = "authenticated",
    firebase_database_url: str | None = None,
    firebase_project_id: str | None = None,
    google_application_credentials: str | None = None,
    firebase_database_emulator_host: str | None = None,
    rtdb_max_connections: int = DEFAULT_MAX_CONNECTIONS,
    storage_policy_shadow: bool = False,
) -> StoreSet:
    """Raises ``InvalidRtdbConfiguration`` (a ``ValueError`` naming the variable) when the RTDB
    variables are set but unusable, ``ShadowBackendNotConfigured`` (a ``ValueError`` too) when a
    shadow is asked for without the other backend; the entry point turns either into a start-up error."""
    supabase, supabase_configured = _supabase_store(
        supabase_db_url,
        supabase_db_statement_cache_size,
        supabase_url,
        supabase_anon_key,
        supabase_jwt_secret,
        supabase_jwt_audience,
    )
    target = resolve_rtdb_target(
        database_url=firebase_database_url or None,
        project_id=firebase_project_id or None,
        emulator_host=firebase_database_emulator_host or None,
        credentials_path=google_application_credentials or None,
    )
    other_configured = supabase_configured if data_backend == "rtdb" else target is not None
    if storage_policy_shadow and not other_configured:
        raise ShadowBackendNotConfigured(data_backend)
    settings: SettingsStore
    policy: StoragePolicyStore = supabase
    shadow: StoragePolicyStore | None = supabase if storage_policy_shadow else None
    if target is None:
        missing = ["FIREBASE_DATABASE_URL", "FIREBASE_PROJECT_ID"]
        settings = UnconfiguredSettingsStore("rtdb", missing)
        if data_backend == "rtdb":
            policy = UnconfiguredStoragePolicyStore("rtdb", missing)
    else:
        settings = RtdbSettingsStore(target, max_connections=rtdb_max_connections)
        if data_backend == "rtdb":
            policy = RtdbStoragePolicyStore(target, max_connections=rtdb_max_connections)
        elif storage_policy_shadow:
            shadow = RtdbStoragePolicyStore(target, max_connections=rtdb_max_connections)
    # Agents live in Supabase whatever DATA_BACKEND says, over SQL only, on the same pool.
    agents: AgentStore = (
        SqlAgentStore(supabase)
        if isinstance(supabase, SqlStoragePolicyStore)
        else UnconfiguredAgentStore("supabase", AGENTS_MISSING)
    )
    return StoreSet(
        settings=settings,
        storage_policy=policy,
        supabase=supabase,
        supabase_configured=supabase_configured,
        rtdb_configured=target is not None,
        shadow=shadow,
        agents=agents,
        agent_link=SqlAgentLinkStore(supabase) if isinstance(supabase, SqlStoragePolicyStore) else None,
    )


def stores_for(settings: ApiSettings) -> StoreSet:
    """The stores for this configuration; no I/O. Raises ``ValueError`` naming a bad variable."""
    return build_stores(
        data_backend=settings.data_backend,
        supabase_db_url=settings.secret("supabase_db_url"),
        supabase_db_statement_cache_size=settings.supabase_db_statement_cache_size,
        supabase_url=settings.supabase_url,
        supabase_anon_key=settings.supabase_anon_key,
        supabase_jwt_secret=settings.secret("supabase_jwt_secret"),
        supabase_jwt_audience=settings.supabase_jwt_audience,
        firebase_database_url=settings.firebase_database_url,
        firebase_project_id=settings.firebase_project_id,
        google_application_credentials=settings.google_application_credentials,
        firebase_database_emulator_host=settings.firebase_database_emulator_host,
        rtdb_max_connections=settings.rtdb_max_connections,
        storage_policy_shadow=settings.storage_policy_shadow,
    )


class BackfillNotConfigured(ValueError):
    """A backend the cutover tool needs has no configuration; ``missing`` names the variables."""

    def __init__(self, missing: list[str]) -> None:
        super().__init__("The cutover tool needs " + " and ".join(missing) + " (not set)")
        self.missing = missing


@dataclass(frozen=True, slots=True)
class BackfillStores:
    """Both backends as the cutover tool sees them: each store also serves the API's own ``read()``,
    so what a copy writes is what the API will serve."""

    rtdb: RtdbStoragePolicyStore
    """Also the ``LegacyStoragePolicySource`` (the global ``settings/storage_policy`` node)."""
    supabase: SqlStoragePolicyStore

    async def aclose(self) -> None:
        await self.rtdb.aclose()
        await self.supabase.aclose()


def backfill_stores(settings: ApiSettings, *, concurrency: int = DEFAULT_READ_CONCURRENCY) -> BackfillStores:
    """The stores of the cutover tool; no I/O. ``concurrency`` bounds the RTDB reads of one
    ``read_stored`` call. Raises ``BackfillNotConfigured`` naming the missing variables, or
    ``InvalidRtdbConfiguration`` (a ``ValueError`` naming the variable) when they are unusable."""
    db_url = settings.secret("supabase_db_url")
    target = resolve_rtdb_target(
        database_url=settings.firebase_database_url or None,
        project_id=settings.firebase_project_id or None,
        emulator_host=settings.firebase_database_emulator_host or None,
        credentials_path=settings.google_application_credentials or None,
    )
    missing = [] if db_url else ["SUPABASE_DB_URL"]
    if target is None:
        missing.append("FIREBASE_DATABASE_URL (or FIREBASE_PROJECT_ID)")
    if missing or db_url is None or target is None:
        raise BackfillNotConfigured(missing)
    return BackfillStores(
        rtdb=RtdbStoragePolicyStore(
            target, max_connections=settings.rtdb_max_connections, read_concurrency=concurrency
        ),
        # Named apart so an operator can tell the cutover from the API in pg_stat_activity.
        supabase=SqlStoragePolicyStore(
            db_url,
            statement_cache_size=settings.supabase_db_statement_cache_size,
            application_name="botmox-cutover",
        ),
    )
