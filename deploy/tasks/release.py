"""The application's releases (the API and the frontend) and their rollout.

A release is a pair of images, pulled from a registry or loaded from ``docker save`` archives the
deploy uploads (air-gapped hosts). It runs in one of two slots, ``blue`` and ``green``: each a compose
project (``app-blue``, ``app-green``) on its own local ports. A new release starts in the idle slot;
Caddy sends traffic to whichever slot passes its health checks (``deploy.tasks.proxy``); only once the
new slot passes the deploy's health gate does the state file record it and the previous slot stop (its
files and images stay, so ``deploy/rollback.py`` brings it back). A release whose checks fail stops the
deploy with the reason, and its slot is stopped; the active slot kept serving throughout.
"""

from __future__ import annotations

import hashlib
import shlex
from dataclasses import dataclass
from io import StringIO
from pathlib import Path
from typing import Any, Final

from pyinfra.api.deploy import deploy
from pyinfra.api.exceptions import DeployError
from pyinfra.context import host
from pyinfra.operations import files, server, systemd
from pyinfra.operations.util import any_changed

from deploy.tasks import layout
from deploy.tasks.docker import archive_image_id, image, image_archives
from deploy.tasks.facts import EnvFileValues
from deploy.tasks.proxy import HEALTH_INTERVAL
from deploy.tasks.templating import hostscript, rendered

DATA_BACKENDS: Final = ("rtdb", "supabase")
# development only where the RTDB is the harness's emulator (plain http, which production refuses).
APP_ENVS: Final = ("production", "development")
COMPONENTS: Final = ("api", "frontend")
API_ENV_FILE: Final = f"{layout.CONFIG_DIR}/api.env"
WAIT_HEALTHY: Final = f"{layout.SCRIPTS_DIR}/botmox-wait-healthy"
HEALTH_TIMEOUT_S: Final = 120
API_READY_PATH: Final = "/api/v1/health/ready"


@dataclass(frozen=True, slots=True)
class Release:
    """The images of one release; ``archives`` maps a component to a local ``docker save`` file."""

    api_image: str
    frontend_image: str
    archives: dict[str, str]

    def image(self, component: str) -> str:
        return self.api_image if component == "api" else self.frontend_image

    @property
    def identity(self) -> str:
        """Same images (by reference, and by id for archives) -> same identity -> nothing to roll out."""
        parts = [self.api_image, self.frontend_image]
        parts += [f"{c}={archive_image_id(Path(p))}" for c, p in sorted(self.archives.items())]
        return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:16]


def release_from(data: Any) -> Release:
    release = dict(data.get("app_release") or {})
    missing = [key for key in ("api_image", "frontend_image") if not release.get(key)]
    if missing:
        raise DeployError(f"app_release lacks {', '.join(missing)} (inventories/README.md)")
    archives = image_archives(data, "app_image_archives", COMPONENTS)
    return Release(str(release["api_image"]), str(release["frontend_image"]), archives)


def other_slot(slot: str | None) -> str:
    return layout.SLOTS[1] if slot == layout.SLOTS[0] else layout.SLOTS[0]


def service_account(data: Any) -> str | None:
    """The Firebase service account's JSON on the ops machine (``firebase_credentials_file``), if any:
    with one, the deploy uploads it and the API's container mounts it; without, the API needs none
    (an emulator)."""
    path = data.get("firebase_credentials_file")
    return str(path) if path else None


def api_env_context(data: Any) -> dict[str, Any]:
    backend = data.get("data_backend", "supabase")
    if backend not in DATA_BACKENDS:
        raise DeployError(f"data_backend must be one of {DATA_BACKENDS}, not {backend!r}")
    app_env = data.get("api_app_env", "production")
    if app_env not in APP_ENVS:
        raise DeployError(f"api_app_env must be one of {APP_ENVS}, not {app_env!r}")
    database_url = data.get("firebase_database_url")
    if not database_url:
        # Everything but the storage policy still lives in RTDB (docs/architecture.md).
        raise DeployError("firebase_database_url is not set (the RTDB the API keeps its data in)")
    emulator = data.get("firebase_emulator_host", "")
    if emulator and app_env == "production":
        raise DeployError("firebase_emulator_host is for test hosts: set api_app_env to development there")
    domain = data.get("domain")
    workers = int(data.get("api_workers", 2))
    return {
        "app_env": app_env,
        "data_backend": backend,
        "firebase_database_url": database_url,
        "firebase_emulator_host": emulator,
        "firebase_credentials": layout.FIREBASE_CREDENTIALS_IN_CONTAINER if service_account(data) else "",
        "api_workers": workers,
        "cors_origins": ",".join(data.get("cors_origins", [f"https://{domain}"])),
        # Caddy runs on the host and reaches the API over loopback: the only proxy it believes.
        "forwarded_allow_ips": "127.0.0.1/32,::1/128",
        "require_supabase_ready": backend == "supabase",
        "supabase_url": f"http://127.0.0.1:{layout.GATEWAY_PORT}",
        "default_tenant_id": data.get("default_tenant_id", "default"),
        "log_level": data.get("api_log_level", "INFO"),
        "extra_env": dict(data.get("api_extra_env", {})),
    }


def slot_context(data: Any, release: Release, slot: str) -> dict[str, Any]:
    return {
        "slot": slot,
        "release": release.identity,
        "api_image": release.api_image,
        "frontend_image": release.frontend_image,
        "api_port": layout.API_PORTS[slot],
        "frontend_port": layout.FRONTEND_PORTS[slot],
        "api_env_file": API_ENV_FILE,
        "firebase_credentials_file": layout.FIREBASE_CREDENTIALS_FILE if service_account(data) else "",
        "firebase_credentials_in_container": layout.FIREBASE_CREDENTIALS_IN_CONTAINER,
        "db_port": layout.DB_PORT,
        "public_url": f"https://{data.get('domain')}",
        "ready_path": API_READY_PATH,
    }


def rollout_state(active: str, releases: dict[str, str]) -> str:
    """The state file: which slot serves, and the release each slot holds (no secrets)."""
    lines = [f"active={active}"] + [
        f"{slot}_release={releases[slot]}" for slot in layout.SLOTS if slot in releases
    ]
    return "\n".join(lines) + "\n"


def health_timeout_s(data: Any) -> int:
    timeout = int(data.get("release_health_timeout_s", HEALTH_TIMEOUT_S))
    if timeout < 1:
        raise DeployError(f"release_health_timeout_s must be at least 1, not {timeout}")
    return timeout


def wait_healthy_command(slot: str, timeout_s: int = HEALTH_TIMEOUT_S) -> str:
    """The health gate: every URL of ``slot`` answers 200 within ``timeout_s``, else the slot is stopped
    (a failed release does not restart forever beside the one serving) and the reason printed."""
    url = f"http://127.0.0.1:{layout.API_PORTS[slot]}{API_READY_PATH}"
    frontend = f"http://127.0.0.1:{layout.FRONTEND_PORTS[slot]}/"
    return shlex.join(
        [
            WAIT_HEALTHY,
            "--timeout",
            str(timeout_s),
            "--project",
            f"botmox-{layout.slot_project(slot)}",
            "--stop-unit",
            layout.compose_unit(layout.slot_project(slot)),
            url,
            frontend,
        ]
    )


@deploy("Release images")
def release_images(release: Release) -> None:
    """Make the release's images present (``deploy.tasks.docker.image``: an uploaded archive, else a pull).

    Examples:
        .. code:: python

            from deploy.tasks.release import release_from, release_images
            release_images(release_from(host.data))
    """
    for component in COMPONENTS:
        image(component=component, ref=release.image(component), archive=release.archives.get(component))


def target_slot(state: dict[str, str], identity: str) -> str:
    """The slot the release ``identity`` must serve from: the active one when it already holds that
    release (a re-run), else the idle one (``blue`` on a first deploy)."""
    active = state.get("active")
    if active in layout.SLOTS and state.get(f"{active}_release") == identity:
        return active
    return other_slot(active)


@deploy("Application release")
def release(wanted: Release, slot: str) -> None:
    """Start ``wanted`` in ``slot`` and, when that slot is not serving yet, wait for its health checks
    (the deploy stops here with the reason if they fail; the active slot keeps serving). Then
    ``record_rollout`` stops the other slot (Caddy already balances onto the healthy new one).

    Examples:
        .. code:: python

            from deploy.tasks.release import release, release_from, target_slot
            wanted = release_from(host.data)
            slot = target_slot(host.get_fact(EnvFileValues, path=layout.ROLLOUT_STATE_FILE), wanted.identity)
            release(wanted=wanted, slot=slot)
    """
    active = host.get_fact(EnvFileValues, path=layout.ROLLOUT_STATE_FILE).get("active")
    files.put(name="Health gate script", src=hostscript("botmox-wait-healthy"), dest=WAIT_HEALTHY, mode="755")
    files.directory(name="Configuration directory", path=layout.CONFIG_DIR, mode="755")
    env = files.put(
        name="The API's environment (0600)",
        src=rendered("app/api.env.j2", **api_env_context(host.data)),
        dest=API_ENV_FILE,
        mode="600",
    )
    changes = [env]
    credentials = service_account(host.data)
    if credentials is not None:
        changes.append(
            files.put(
                name="The Firebase service account (0400, the API's user)",
                src=credentials,
                dest=layout.FIREBASE_CREDENTIALS_FILE,
                user=str(layout.API_CONTAINER_UID),
                group=str(layout.API_CONTAINER_UID),
                mode="400",
            )
        )
    release_images(release=wanted)
    directory = layout.compose_dir(layout.slot_project(slot))
    files.directory(name=f"Slot {slot}", path=directory, mode="755")
    changes.append(
        files.put(
            name=f"Slot {slot}: compose.yaml for release {wanted.identity}",
            src=rendered("app/compose.yaml.j2", **slot_context(host.data, wanted, slot)),
            dest=f"{directory}/compose.yaml",
            mode="644",
        )
    )
    unit = layout.compose_unit(layout.slot_project(slot))
    systemd.service(name=f"Run slot {slot}", service=unit, running=True, enabled=True)
    systemd.service(
        name=f"Apply slot {slot}'s changes", service=unit, reloaded=True, _if=any_changed(*changes)
    )
    if slot != active:
        server.shell(
            name=f"Health gate: slot {slot} must be ready before it takes traffic",
            commands=[wait_healthy_command(slot, health_timeout_s(host.data))],
        )


@deploy("Record the rollout")
def record_rollout(slot: str, release_identity: str) -> None:
    """Once ``slot`` passed the health gate: write the state file and stop the other slot (kept on
    disk for ``deploy/rollback.py``).

    Examples:
        .. code:: python

            from deploy.tasks.release import record_rollout
            record_rollout(slot="green", release_identity="3f2a...")
    """
    state = host.get_fact(EnvFileValues, path=layout.ROLLOUT_STATE_FILE)
    releases = {s: state[f"{s}_release"] for s in layout.SLOTS if f"{s}_release" in state}
    releases[slot] = release_identity
    files.directory(name="State directory", path=layout.STATE_DIR, mode="755")
    recorded = files.put(
        name=f"Record slot {slot} as active",
        src=StringIO(rollout_state(slot, releases)),
        dest=layout.ROLLOUT_STATE_FILE,
        mode="644",
    )
    previous = layout.compose_unit(layout.slot_project(other_slot(slot)))
    if other_slot(slot) in releases:
        # Caddy checks each slot's health every HEALTH_INTERVAL: two of them and it has seen the new
        # slot healthy, so stopping the old one leaves no request waiting (lb_try_duration covers it).
        server.shell(
            name=f"Let the proxy see slot {slot} healthy",
            commands=[f"sleep {2 * int(HEALTH_INTERVAL.removesuffix('s'))}"],
            _if=recorded.did_change,
        )
        systemd.service(
            name=f"Stop the previous slot {other_slot(slot)}", service=previous, running=False, enabled=False
        )


@deploy("Roll back")
def rollback_to(slot: str) -> None:
    """Start the kept release in ``slot`` and wait for its health checks (``deploy/rollback.py`` then
    records it and stops the other slot).

    Examples:
        .. code:: python

            from deploy.tasks.release import rollback_to
            rollback_to(slot="blue")
    """
    unit = layout.compose_unit(layout.slot_project(slot))
    systemd.service(name=f"Start the previous slot {slot}", service=unit, running=True, enabled=True)
    server.shell(
        name=f"Health gate: slot {slot} must be ready before it takes traffic",
        commands=[wait_healthy_command(slot, health_timeout_s(host.data))],
    )
