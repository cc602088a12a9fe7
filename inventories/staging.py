"""Staging: ``pyinfra inventories/staging.py deploy/vps.py``. EXAMPLE DATA, like prod.py: replace the
example.org names and 192.0.2.x documentation addresses. Let's Encrypt's staging CA, so certificates
are real-looking but untrusted and never hit production rate limits."""

_SITE = {
    "botmox_env": "staging",
    "domain": "staging.botmox.example.org",
    "tls": "acme",
    "acme_email": "ops@example.org",
    "acme_ca": "https://acme-staging-v02.api.letsencrypt.org/directory",
    "data_backend": "supabase",
    "supabase_profile": "full",
    "api_workers": 2,
    "firebase_database_url": "https://botmox-staging-example-default-rtdb.europe-west1.firebasedatabase.app",
    "app_release": {
        "api_image": "registry.example.org/botmox/api:staging",
        "frontend_image": "registry.example.org/botmox/frontend:staging",
    },
}

vps = [
    ("vps-staging.example.org", {**_SITE, "ssh_hostname": "192.0.2.30"}),
]

agents = [
    (
        "agent-staging.example.org",
        {"ssh_hostname": "192.0.2.40", "agent_server_url": "https://staging.botmox.example.org"},
    ),
]
