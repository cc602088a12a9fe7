"""``botmox-agent``: the customer agent's command line (``python -m botmox_agent`` does the same).

``vault ...`` manages the local secret vault; ``pair``, ``run`` and ``status`` are the agent's runtime
(``botmox_agent.runtime``), given the production executors here.
"""

from __future__ import annotations

import typer

from botmox_agent.runtime import production_executors, register_commands
from botmox_agent.vault._cli import app as vault_app

app = typer.Typer(
    name="botmox-agent",
    help="The Bot-Mox customer agent: pairing, the tunnel to the control plane, a local secret vault.",
    no_args_is_help=True,
    add_completion=False,
    # Rich's tracebacks print local variables, which may hold secrets: plain tracebacks only.
    pretty_exceptions_enable=False,
)
app.add_typer(vault_app, name="vault")
register_commands(app, production_executors)


@app.callback()
def _agent() -> None:
    """The Bot-Mox customer agent."""


def main() -> None:
    app()


if __name__ == "__main__":
    main()
