"""Where things live on the hosts, and the local ports the control plane's parts listen on.

One home for every path and port: templates get them from the context the tasks build, tests read them
from here.
"""

from __future__ import annotations

from typing import Final

# The compose projects: one directory each, one systemd unit each (botmox-compose@<project>.service).
COMPOSE_ROOT: Final = "/opt/botmox/compose"
# Secrets made on the host at the first deploy and kept there (0700 directory, 0600 files).
SECRETS_DIR: Final = "/etc/botmox/secrets"
SECRETS_FILE: Final = f"{SECRETS_DIR}/control-plane.env"
# The Firebase service account the API reads RTDB with (uploaded from the ops machine, never generated),
# owned by the API image's user (65534) with mode 0400, mounted read-only into the API's container.
FIREBASE_CREDENTIALS_FILE: Final = f"{SECRETS_DIR}/firebase-service-account.json"
FIREBASE_CREDENTIALS_IN_CONTAINER: Final = "/run/secrets/firebase-service-account.json"
API_CONTAINER_UID: Final = 65534
# Non-secret configuration rendered by the deploy (0600: it still describes the system).
CONFIG_DIR: Final = "/etc/botmox"
STATE_DIR: Final = "/var/lib/botmox"
# docker save archives uploaded for air-gapped hosts.
IMAGE_ARCHIVES_DIR: Final = f"{STATE_DIR}/images"
# The release each slot runs and which slot takes traffic (written by deploy/tasks/release.py).
ROLLOUT_STATE_FILE: Final = f"{STATE_DIR}/rollout.env"
# supabase/ of the repository (migrations + config.toml), for the Supabase CLI on the host.
MIGRATIONS_WORKDIR: Final = "/opt/botmox/supabase-project"
TOOLS_DIR: Final = "/usr/local/lib/botmox"
SCRIPTS_DIR: Final = "/usr/local/sbin"
BACKUP_DIR: Final = "/var/backups/botmox"
# Debian's prometheus-node-exporter reads *.prom files here (its textfile collector).
NODE_EXPORTER_TEXTFILE_DIR: Final = "/var/lib/prometheus/node-exporter"

SUPABASE_PROJECT: Final = "supabase"
DB_PORT: Final = 5432
GATEWAY_PORT: Final = 54321
STUDIO_PORT: Final = 54323
# Two release slots: the new release starts in the idle one and takes traffic once healthy.
SLOTS: Final = ("blue", "green")
API_PORTS: Final = {"blue": 8101, "green": 8102}
FRONTEND_PORTS: Final = {"blue": 8201, "green": 8202}
POSTGRES_EXPORTER_PORT: Final = 9187
NODE_EXPORTER_PORT: Final = 9100
PROMETHEUS_PORT: Final = 9090

# The agent host.
AGENT_USER: Final = "botmox-agent"
AGENT_HOME: Final = "/var/lib/botmox-agent"
# Root-owned: the agent cannot change its own code.
AGENT_VENV: Final = "/opt/botmox-agent/venv"
AGENT_STATE_DIR: Final = f"{AGENT_HOME}/state"
AGENT_CONFIG_DIR: Final = "/etc/botmox-agent"
AGENT_ENV_FILE: Final = f"{AGENT_CONFIG_DIR}/agent.env"
# In a 0700 directory of its own (the config directory is readable by the agent's group).
AGENT_SECRETS_FILE: Final = f"{AGENT_CONFIG_DIR}/secrets/agent.env"
AGENT_WHEELS_DIR: Final = "/opt/botmox-agent/wheels"
AGENT_METRICS_ADDRESS: Final = "127.0.0.1:9465"
AGENT_SYNCTHING_GUI: Final = "127.0.0.1:8384"


def compose_dir(project: str) -> str:
    return f"{COMPOSE_ROOT}/{project}"


def compose_unit(project: str) -> str:
    return f"botmox-compose@{project}.service"


def slot_project(slot: str) -> str:
    return f"app-{slot}"
