"""Switch the control plane back to the previous release: ``pyinfra inventories/prod deploy/rollback.py``.

The previous slot still has its compose file and images (deploy/tasks/release.py); this starts it,
waits for its health checks (the deploy stops there if they fail, the current slot still serving; Caddy
sends traffic to whichever slot passes its own checks), points monitoring at it and stops the other
slot. Run it again to roll forward. It refuses when the previous slot no longer holds the release the
state file names (a failed deploy replaced it).
"""

from pyinfra.api.exceptions import DeployError
from pyinfra.context import host
from pyinfra.facts.files import FindInFile

from deploy.tasks import layout
from deploy.tasks.facts import EnvFileValues
from deploy.tasks.observability import observability
from deploy.tasks.release import other_slot, record_rollout, rollback_to

if "vps" in host.groups:
    state = host.get_fact(EnvFileValues, path=layout.ROLLOUT_STATE_FILE)
    previous = other_slot(state.get("active"))
    identity = state.get(f"{previous}_release")
    if not state.get("active") or not identity:
        raise DeployError(f"{host.name}: no previous release to roll back to ({layout.ROLLOUT_STATE_FILE})")
    compose = f"{layout.compose_dir(layout.slot_project(previous))}/compose.yaml"
    if not host.get_fact(FindInFile, path=compose, pattern=f"release {identity}\\.$"):
        # A later deploy put a release into that slot which failed its health checks.
        raise DeployError(
            f"{host.name}: slot {previous} no longer holds release {identity} (a deploy that failed its "
            "health checks replaced it): deploy a good release instead"
        )
    rollback_to(slot=previous)
    record_rollout(slot=previous, release_identity=identity)
    observability(slot=previous)
