"""Supabase, self-hosted: a compose project rendered from templates (database, auth, REST, the Kong
gateway, storage, meta and studio), or with the ``db-only`` profile PostgreSQL alone, for hosts and
tests that cannot pull Supabase's other images. Every port is published on 127.0.0.1 only: Caddy
fronts the gateway, Studio is reached through an SSH tunnel.

The secrets (``POSTGRES_PASSWORD``, ``JWT_SECRET``, ``ANON_KEY``, ``SERVICE_ROLE_KEY``) come from the
host's secrets file (``deploy.tasks.secrets``) through docker-compose's ``--env-file``: the rendered
files hold ``${NAME}`` references only.
"""

from __future__ import annotations

from typing import Any, Final

from pyinfra.api.deploy import deploy
from pyinfra.api.exceptions import DeployError
from pyinfra.context import host
from pyinfra.operations import files, systemd
from pyinfra.operations.util import any_changed

from deploy.tasks import layout
from deploy.tasks.docker import image, image_archives
from deploy.tasks.templating import rendered

PROFILES: Final = ("full", "db-only")
SERVICES: Final = {"full": ("db", "auth", "rest", "kong", "storage", "meta", "studio"), "db-only": ("db",)}
# Supabase's self-hosted images (pinned; override per inventory with supabase_images).
DEFAULT_IMAGES: Final = {
    "db": "supabase/postgres:15.8.1.060",
    "auth": "supabase/gotrue:v2.177.0",
    "rest": "postgrest/postgrest:v12.2.12",
    "kong": "kong:2.8.1",
    "storage": "supabase/storage-api:v1.25.7",
    "meta": "supabase/postgres-meta:v0.91.0",
    "studio": "supabase/studio:2025.06.30-sha-6f5982d",
}
# db-only: PostgreSQL 15 with the official image's interface (POSTGRES_PASSWORD, PGDATA).
DB_ONLY_IMAGE: Final = "postgres:15-bookworm"


def supabase_context(data: Any) -> dict[str, Any]:
    profile = data.get("supabase_profile", "full")
    if profile not in PROFILES:
        raise DeployError(f"supabase_profile must be one of {PROFILES}, not {profile!r}")
    images = {**DEFAULT_IMAGES, **dict(data.get("supabase_images", {}))}
    if profile == "db-only":
        images["db"] = data.get("supabase_db_only_image", DB_ONLY_IMAGE)
    return {
        "profile": profile,
        "images": {service: images[service] for service in SERVICES[profile]},
        "archives": image_archives(data, "supabase_image_archives", SERVICES[profile]),
        "site_url": f"https://{data.get('domain')}",
        "db_port": layout.DB_PORT,
        "gateway_port": layout.GATEWAY_PORT,
        "studio_port": layout.STUDIO_PORT,
        "disable_signup": bool(data.get("supabase_disable_signup", True)),
        "storage_file_size_limit": int(data.get("supabase_storage_file_size_limit", 50 * 1024 * 1024)),
    }


def supabase_files(profile: str) -> dict[str, str]:
    """Template -> path in the project's directory, for ``profile``."""
    if profile == "db-only":
        return {"supabase/compose.yaml.j2": "compose.yaml"}
    return {
        "supabase/compose.yaml.j2": "compose.yaml",
        "supabase/kong.yml": "volumes/api/kong.yml",
        "supabase/roles.sql": "volumes/db/roles.sql",
        "supabase/jwt.sql": "volumes/db/jwt.sql",
    }


@deploy("Supabase")
def supabase() -> None:
    """Render the Supabase compose project and run it (``botmox-compose@supabase.service``).

    Examples:
        .. code:: python

            from deploy.tasks.supabase import supabase
            supabase()  # data: domain, supabase_profile ("full" or "db-only"), supabase_images,
                        # supabase_image_archives ({"db": "<docker save file>"} for air-gapped hosts)
    """
    context = supabase_context(host.data)
    directory = layout.compose_dir(layout.SUPABASE_PROJECT)
    for sub in ("", "/volumes/api", "/volumes/db"):
        files.directory(name=f"{directory}{sub}", path=f"{directory}{sub}", mode="755")
    changes = [
        files.put(
            name=f"Supabase: {target}",
            src=rendered(template, **context),
            dest=f"{directory}/{target}",
            mode="644",
        )
        for template, target in supabase_files(context["profile"]).items()
    ]
    for service, ref in context["images"].items():
        image(component=f"supabase-{service}", ref=ref, archive=context["archives"].get(service))
    unit = layout.compose_unit(layout.SUPABASE_PROJECT)
    systemd.service(name="Run Supabase", service=unit, running=True, enabled=True)
    systemd.service(
        name="Apply Supabase's changed files",
        service=unit,
        reloaded=True,
        _if=any_changed(*changes),
    )
