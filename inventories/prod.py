"""Production: ``pyinfra inventories/prod deploy/vps.py`` (``inventories/prod`` links to this file).

EXAMPLE DATA: the names are example.org hosts and the addresses documentation ones (192.0.2.0/24,
RFC 5737); replace them with the real ones before a real deploy. No secret lives here: the hosts
generate theirs at the first deploy (deploy/tasks/secrets.py), the ops keys are public keys, the
pairing code comes from the environment. Variables: inventories/README.md.
"""

_SITE = {
    "botmox_env": "prod",
    "domain": "botmox.example.org",
    "tls": "acme",
    "acme_email": "ops@example.org",
    "data_backend": "supabase",
    "supabase_profile": "full",
    "api_workers": 4,
    # Everything but the storage policy still lives in RTDB; the service account's JSON comes from a file
    # outside the repository (BOTMOX_FIREBASE_CREDENTIALS_FILE, group_data/vps.py).
    "firebase_database_url": "https://botmox-example-default-rtdb.europe-west1.firebasedatabase.app",
    "app_release": {
        "api_image": "registry.example.org/botmox/api:2026.12.06",
        "frontend_image": "registry.example.org/botmox/frontend:2026.12.06",
    },
}

vps = [
    ("vps-1.example.org", {**_SITE, "ssh_hostname": "192.0.2.10"}),
]

agents = [
    (
        "agent-1.example.org",
        {
            "ssh_hostname": "192.0.2.20",
            "agent_server_url": "https://botmox.example.org",
            "agent_name": "edge-1",
        },
    ),
]
