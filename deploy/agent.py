"""Customer agent hosts: ``pyinfra inventories/prod deploy/agent.py`` (``--dry`` prints the plan).

The base system, then the agent (deploy/tasks/agent_host.py). A host that is not paired yet needs
``BOTMOX_AGENT_PAIRING_CODE`` (a one-time code from the control plane) in the environment of this
run; once paired, the code is neither needed nor used. Runs on the hosts of the ``agents`` group.
"""

from pyinfra.context import host

from deploy.tasks.agent_host import agent_host
from deploy.tasks.base import base

if "agents" in host.groups:
    base()
    agent_host()
