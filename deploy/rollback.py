"""Switch the control plane back to the previous release: ``pyinfra inventories/prod deploy/rollback.py``.

The previous slot still has its compose file and images (deploy/tasks/release.py); this starts it,
waits for its health checks (the deploy stops there if they fail, the current slot still serving),
switches the proxy and monitoring to it and stops the other slot. Run it again to roll forward.
"""

from pyinfra.api.exceptions import DeployError
from pyinfra.context import host

from deploy.tasks import layout
from deploy.tasks.facts import EnvFileValues
from deploy.tasks.observability import observability
from deploy.tasks.proxy import proxy
from deploy.tasks.release import other_slot, record_rollout, rollback_to

if "vps" in host.groups:
    state = host.get_fact(EnvFileValues, path=layout.ROLLOUT_STATE_FILE)
    previous = other_slot(state.get("active"))
    identity = state.get(f"{previous}_release")
    if not state.get("active") or not identity:
        raise DeployError(f"{host.name}: no previous release to roll back to ({layout.ROLLOUT_STATE_FILE})")
    rollback_to(slot=previous)
    proxy(slot=previous)
    record_rollout(slot=previous, release_identity=identity)
    observability(slot=previous)
