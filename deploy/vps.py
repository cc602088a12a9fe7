"""The control plane's VPS: ``pyinfra inventories/prod deploy/vps.py`` (``--dry`` prints the plan).

Base system, Docker, the host-kept secrets, Supabase, the migrations, the application release in its
slot (health-gated), the proxy in front of both slots, the rollout recorded (the previous slot stopped),
nightly backups, monitoring.
Runs on the hosts of the ``vps`` group. See deploy/README.md and docs/runbooks/first-deploy.md.
"""

from pyinfra.context import host

from deploy.tasks import layout
from deploy.tasks.backups import backups
from deploy.tasks.base import base
from deploy.tasks.docker import docker
from deploy.tasks.facts import EnvFileValues
from deploy.tasks.migrations import migrations
from deploy.tasks.observability import observability
from deploy.tasks.proxy import proxy
from deploy.tasks.release import record_rollout, release, release_from, target_slot
from deploy.tasks.secrets import control_plane_secrets
from deploy.tasks.supabase import supabase

if "vps" in host.groups:
    base()
    docker()
    control_plane_secrets()
    supabase()
    migrations()
    wanted = release_from(host.data)
    slot = target_slot(host.get_fact(EnvFileValues, path=layout.ROLLOUT_STATE_FILE), wanted.identity)
    release(wanted=wanted, slot=slot)
    proxy()
    record_rollout(slot=slot, release_identity=wanted.identity)
    backups()
    observability(slot=slot)
