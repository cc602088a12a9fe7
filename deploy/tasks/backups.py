"""Nightly ``pg_dump`` of the application's schemas with retention, run by a systemd timer, and the
restore script (docs/runbooks/backup-and-restore.md). Each success leaves a metric for node exporter's
textfile collector, so Prometheus alerts when the newest backup is too old."""

from __future__ import annotations

from typing import Any, Final

from pyinfra.api.deploy import deploy
from pyinfra.context import host
from pyinfra.operations import files, systemd
from pyinfra.operations.util import any_changed

from deploy.tasks import layout
from deploy.tasks.templating import hostscript, rendered

# The schemas the application owns; add auth/storage with backup_schemas when their data matters.
DEFAULT_SCHEMAS: Final = ("public", "botmox", "supabase_migrations")
BACKUP_CONFIG: Final = f"{layout.CONFIG_DIR}/backup.env"


def backup_context(data: Any) -> dict[str, Any]:
    return {
        "backup_dir": layout.BACKUP_DIR,
        "retention_days": int(data.get("backup_retention_days", 14)),
        "schemas": list(data.get("backup_schemas", DEFAULT_SCHEMAS)),
        "db_port": layout.DB_PORT,
        "db_name": "postgres",
        "secrets_file": layout.SECRETS_FILE,
        "textfile_dir": layout.NODE_EXPORTER_TEXTFILE_DIR,
        "on_calendar": data.get("backup_on_calendar", "*-*-* 03:15:00 UTC"),
    }


@deploy("Backups")
def backups() -> None:
    """``botmox-backup`` nightly (``botmox-backup.timer``) and ``botmox-restore``.

    Examples:
        .. code:: python

            from deploy.tasks.backups import backups
            backups()  # data: backup_retention_days, backup_schemas, backup_on_calendar
    """
    context = backup_context(host.data)
    files.directory(name="Backup directory", path=layout.BACKUP_DIR, mode="700")
    changes = [
        files.put(
            name="Backup settings",
            src=rendered("backups/backup.env.j2", **context),
            dest=BACKUP_CONFIG,
            mode="600",
        ),
        files.put(
            name="botmox-backup",
            src=hostscript("botmox-backup"),
            dest=f"{layout.SCRIPTS_DIR}/botmox-backup",
            mode="755",
        ),
        files.put(
            name="botmox-restore",
            src=hostscript("botmox-restore"),
            dest=f"{layout.SCRIPTS_DIR}/botmox-restore",
            mode="755",
        ),
        files.put(
            name="botmox-backup.service",
            src=rendered("systemd/botmox-backup.service.j2", **context),
            dest="/etc/systemd/system/botmox-backup.service",
            mode="644",
        ),
        files.put(
            name="botmox-backup.timer",
            src=rendered("systemd/botmox-backup.timer.j2", **context),
            dest="/etc/systemd/system/botmox-backup.timer",
            mode="644",
        ),
    ]
    systemd.daemon_reload(name="Reload systemd's units", _if=any_changed(*changes))
    systemd.service(name="Nightly backups", service="botmox-backup.timer", running=True, enabled=True)
