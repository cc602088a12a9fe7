"""The two stores from the API's own configuration (``ApiSettings``; no second one), built by the
API's factory (``stores.factory.backfill_stores``: the same store classes the API serves with).

Unlike the API, the tool cannot run with a backend missing: the factory names what is missing and
this module says what each variable must be here (an administrator's ``SUPABASE_DB_URL``), before
anything connects.
"""

from __future__ import annotations

import hashlib
from typing import Final

from psycopg import ProgrammingError
from psycopg.conninfo import conninfo_to_dict

from botmox_api.config import ApiSettings, ConfigError
from botmox_api.cutover.survey import Backends
from botmox_api.stores.factory import BackfillNotConfigured, backfill_stores

_WHAT_IT_MUST_BE: Final = {
    "SUPABASE_DB_URL": "an administrator's DSN: the tool reads and writes every tenant's policy",
}


def _explained(variable: str) -> str:
    why = _WHAT_IT_MUST_BE.get(variable)
    return f"{variable} ({why})" if why else variable


def open_backends(settings: ApiSettings, concurrency: int) -> Backends:
    """Both stores and RTDB's legacy node; no I/O (connections open on first use). ``concurrency``
    bounds RTDB's reads of one batch (SQL reads a batch in one call). Raises ``ConfigError`` naming
    a missing variable, ``ValueError`` naming an unusable one."""
    try:
        stores = backfill_stores(settings, concurrency=concurrency)
    except BackfillNotConfigured as error:
        raise ConfigError(
            "the cutover tool needs " + " and ".join(_explained(name) for name in error.missing)
        ) from None
    return Backends(rtdb=stores.rtdb, supabase=stores.supabase, legacy=stores.rtdb)


def deployment_of(settings: ApiSettings) -> str:
    """A short fingerprint of where the two backends are (the database's host, port and name, and
    RTDB's variables; never a password): a checkpoint is resumed only against the deployment that
    wrote it, not by a run from the same directory against another one."""
    try:
        params = conninfo_to_dict(settings.secret("supabase_db_url") or "")
    except ProgrammingError:
        params = {}
    where = [str(params.get(key, "")) for key in ("host", "hostaddr", "port", "dbname")]
    where += [
        settings.firebase_database_url or "",
        settings.firebase_project_id or "",
        settings.firebase_database_emulator_host or "",
    ]
    return hashlib.sha256("\n".join(where).encode()).hexdigest()[:12]
