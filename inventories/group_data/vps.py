"""Data of the control plane's hosts (group ``vps``). Variables: inventories/README.md."""

import os as _os

# The Firebase service account's JSON (a secret): a file outside the repository, uploaded 0400.
firebase_credentials_file = _os.environ.get("BOTMOX_FIREBASE_CREDENTIALS_FILE", "")

data_backend = "supabase"
supabase_profile = "full"
api_workers = 2
default_tenant_id = "default"
backup_retention_days = 14
backup_on_calendar = "*-*-* 03:15:00 UTC"
prometheus_retention = "30d"
alert_5xx_ratio = 0.05
agent_metrics_targets: list[str] = []
