"""The two stores from the API's own configuration (``ApiSettings``; no second one), built by the
API's factory (``stores.factory.backfill_stores``: the same store classes the API serves with).

Unlike the API, the tool cannot run with a backend missing: it needs both, with an administrator's
``SUPABASE_DB_URL`` (it reads and writes every tenant's row). What is missing is named here, before
anything connects.
"""

from __future__ import annotations

from botmox_api.config import ApiSettings, ConfigError
from botmox_api.cutover.survey import Backends
from botmox_api.stores._rtdb import resolve_rtdb_target


def check_configuration(settings: ApiSettings) -> None:
    """Raises ``ConfigError`` naming each variable the tool needs and lacks, or an unusable one."""
    missing: list[str] = []
    if not settings.secret("supabase_db_url"):
        missing.append(
            "SUPABASE_DB_URL (an administrator's DSN: the tool reads and writes every tenant's policy)"
        )
    try:
        target = resolve_rtdb_target(
            database_url=settings.firebase_database_url or None,
            project_id=settings.firebase_project_id or None,
            emulator_host=settings.firebase_database_emulator_host or None,
            credentials_path=settings.google_application_credentials or None,
        )
    except ValueError as error:
        raise ConfigError(str(error)) from None
    if target is None:
        missing.append(
            "FIREBASE_DATABASE_URL (or FIREBASE_PROJECT_ID; with the emulator, "
            "FIREBASE_DATABASE_EMULATOR_HOST too)"
        )
    if missing:
        raise ConfigError("the cutover tool needs " + " and ".join(missing))


def open_backends(settings: ApiSettings) -> Backends:
    """Both stores and RTDB's legacy node; no I/O (connections open on first use)."""
    check_configuration(settings)
    from botmox_api.stores import factory

    build = getattr(factory, "backfill_stores", None)
    if build is None:
        raise ConfigError("this build has no backfill stores (stores.factory.backfill_stores)")
    stores = build(settings)
    return Backends(rtdb=stores.rtdb, supabase=stores.supabase, legacy=stores.rtdb)
