"""Monitoring with Debian's packages: Prometheus, node exporter, the PostgreSQL exporter and the
blackbox exporter (readiness probes), all on 127.0.0.1 (reach Prometheus through an SSH tunnel).

Prometheus scrapes the active slot's API ``/metrics`` with the internal infra token as bearer (copied into
its own runtime directory at each start, never written into its config), and the agents listed in
``agent_metrics_targets``. Alert rules: readiness, 5xx rate, backup age, exporters down.
"""

from __future__ import annotations

from typing import Any, Final

from pyinfra.api.deploy import deploy
from pyinfra.context import host
from pyinfra.operations import apt, files, server, systemd
from pyinfra.operations.util import any_changed

from deploy.tasks import layout
from deploy.tasks.facts import RoleLogsIn
from deploy.tasks.migrations import HOST_DATABASE, Database, psql_script_command, role_password_sql
from deploy.tasks.release import API_READY_PATH
from deploy.tasks.secrets import CONTROL_PLANE_EXPORTS
from deploy.tasks.templating import rendered

PACKAGES: Final = (
    "prometheus",
    "prometheus-node-exporter",
    "prometheus-postgres-exporter",
    "prometheus-blackbox-exporter",
)
MONITOR_ROLE: Final = "botmox_monitor"
MONITOR_PASSWORD_VARIABLE: Final = "MONITOR_DB_PASSWORD"  # noqa: S105 - a variable name
BLACKBOX_PORT: Final = 9115
# Each service's runtime directory (systemd's RuntimeDirectory=, 0700, its user): the secret it reads.
PROMETHEUS_RUNTIME_DIR: Final = "/run/botmox-prometheus"
POSTGRES_EXPORTER_RUNTIME_DIR: Final = "/run/botmox-postgres-exporter"
# A backup older than this (a missed night plus slack) fires BotmoxBackupTooOld.
BACKUP_MAX_AGE_S: Final = 26 * 3600


def observability_context(data: Any, slot: str) -> dict[str, Any]:
    return {
        "api_target": f"127.0.0.1:{layout.API_PORTS[slot]}",
        "ready_url": f"http://127.0.0.1:{layout.API_PORTS[slot]}{API_READY_PATH}",
        "node_target": f"127.0.0.1:{layout.NODE_EXPORTER_PORT}",
        "postgres_target": f"127.0.0.1:{layout.POSTGRES_EXPORTER_PORT}",
        "blackbox_target": f"127.0.0.1:{BLACKBOX_PORT}",
        "agent_targets": list(data.get("agent_metrics_targets", [])),
        "infra_token_file": CONTROL_PLANE_EXPORTS["INTERNAL_INFRA_TOKEN"],
        "infra_token_credential": f"{PROMETHEUS_RUNTIME_DIR}/infra-token",
        "prometheus_runtime_dir": PROMETHEUS_RUNTIME_DIR.rsplit("/", 1)[1],
        "monitor_password_file": CONTROL_PLANE_EXPORTS[MONITOR_PASSWORD_VARIABLE],
        "monitor_password_credential": f"{POSTGRES_EXPORTER_RUNTIME_DIR}/db-password",
        "postgres_exporter_runtime_dir": POSTGRES_EXPORTER_RUNTIME_DIR.rsplit("/", 1)[1],
        "backup_max_age_s": BACKUP_MAX_AGE_S,
        "five_xx_ratio": float(data.get("alert_5xx_ratio", 0.05)),
        "db_port": layout.DB_PORT,
        "monitor_role": MONITOR_ROLE,
        "textfile_dir": layout.NODE_EXPORTER_TEXTFILE_DIR,
        "prometheus_port": layout.PROMETHEUS_PORT,
        "node_exporter_port": layout.NODE_EXPORTER_PORT,
        "postgres_exporter_port": layout.POSTGRES_EXPORTER_PORT,
        "blackbox_port": BLACKBOX_PORT,
        "retention": data.get("prometheus_retention", "30d"),
        "scrape_interval": data.get("prometheus_scrape_interval", "15s"),
        "not_ready_for": data.get("alert_not_ready_for", "1m"),
    }


def monitor_role_command(database: Database = HOST_DATABASE) -> str:
    """Create the monitoring role (pg_monitor, nothing else) when absent, then set its password."""
    script = (
        "do $$ begin\n"
        "  if not exists (select 1 from pg_roles where rolname = 'botmox_monitor') then\n"
        "    create role botmox_monitor login;\n"
        "  end if;\n"
        "end $$;\n"
        "grant pg_monitor to botmox_monitor;\n"
    )
    return psql_script_command(script + role_password_sql(MONITOR_ROLE, MONITOR_PASSWORD_VARIABLE), database)


@deploy("Observability")
def observability(slot: str) -> None:
    """Prometheus and its exporters; scrape targets follow the release ``slot`` taking traffic.

    Examples:
        .. code:: python

            from deploy.tasks.observability import observability
            observability(slot="blue")  # data: agent_metrics_targets, alert_5xx_ratio, prometheus_retention
    """
    context = observability_context(host.data, slot)
    apt.packages(name="Prometheus and exporters", packages=list(PACKAGES))

    logs_in = host.get_fact(
        RoleLogsIn,
        secrets_file=layout.SECRETS_FILE,
        port=layout.DB_PORT,
        role=MONITOR_ROLE,
        variable=MONITOR_PASSWORD_VARIABLE,
    )
    if not logs_in:
        server.shell(name="The monitoring database role", commands=[monitor_role_command()])

    def put(template: str, dest: str, mode: str = "644") -> Any:
        return files.put(name=dest, src=rendered(template, **context), dest=dest, mode=mode)

    units: dict[str, list[Any]] = {
        "prometheus-node-exporter": [
            put("prometheus/node-exporter.default.j2", "/etc/default/prometheus-node-exporter")
        ],
        "prometheus-postgres-exporter": [
            put("prometheus/postgres-exporter.default.j2", "/etc/default/prometheus-postgres-exporter"),
            put(
                "prometheus/postgres-exporter.dropin.j2",
                "/etc/systemd/system/prometheus-postgres-exporter.service.d/botmox.conf",
            ),
        ],
        "prometheus-blackbox-exporter": [
            put("prometheus/blackbox-exporter.default.j2", "/etc/default/prometheus-blackbox-exporter")
        ],
        "prometheus": [
            put("prometheus/prometheus.default.j2", "/etc/default/prometheus"),
            put("prometheus/prometheus.yml.j2", "/etc/prometheus/prometheus.yml"),
            put("prometheus/botmox-rules.yml.j2", "/etc/prometheus/botmox-rules.yml"),
            put("prometheus/prometheus.dropin.j2", "/etc/systemd/system/prometheus.service.d/botmox.conf"),
        ],
    }
    every = [change for changes in units.values() for change in changes]
    systemd.daemon_reload(name="Reload systemd's units", _if=any_changed(*every))
    for unit, changes in units.items():
        systemd.service(name=f"Run {unit}", service=unit, running=True, enabled=True)
        systemd.service(
            name=f"Restart {unit} for its changes", service=unit, restarted=True, _if=any_changed(*changes)
        )
