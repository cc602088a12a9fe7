"""``botmox-agent``: the customer agent's command line (``python -m botmox_agent`` does the same).

Each concern is a command group: ``vault`` today; ``pair``, ``run`` and ``status`` join it later.
"""

from __future__ import annotations

import typer

from botmox_agent.vault._cli import app as vault_app

app = typer.Typer(
    name="botmox-agent",
    help="The Bot-Mox customer agent: a local secret vault (and, later, pairing and the tunnel).",
    no_args_is_help=True,
    add_completion=False,
    # Rich's tracebacks print local variables, which may hold secrets: plain tracebacks only.
    pretty_exceptions_enable=False,
)
app.add_typer(vault_app, name="vault")


@app.callback()
def _agent() -> None:
    """The Bot-Mox customer agent."""


def main() -> None:
    app()


if __name__ == "__main__":
    main()
