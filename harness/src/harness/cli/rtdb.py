"""``python -m harness rtdb``: the harness's RTDB emulator in the foreground.

The stack, the fixtures and the rtdb image start it as ``python -m harness.rtdb`` with the same
options: ``harness.rtdb.__main__`` runs this command alone, without the rest of the CLI loaded.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from harness.rtdb.server import EmulatorConfig, RtdbApp, serve
from harness.rtdb.snapshot import SnapshotError

EXIT_BAD_SNAPSHOT = 2


def rtdb(
    host: Annotated[str, typer.Option(help="The address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="The port to listen on.")] = 9000,
    snapshot: Annotated[
        Path | None, typer.Option(help="JSON file every acknowledged write is saved to.")
    ] = None,
    default_namespace: Annotated[str, typer.Option(help="Namespace when ?ns= is absent.")] = "default",
    keepalive: Annotated[float, typer.Option(help="Seconds between keep-alive events.")] = 1.0,
    log_level: Annotated[str, typer.Option(help="uvicorn's log level.")] = "warning",
) -> None:
    """Run the harness's RTDB emulator until Ctrl-C or SIGTERM (the stack starts it by itself)."""
    try:
        config = EmulatorConfig(
            snapshot=snapshot, default_namespace=default_namespace, keepalive_seconds=keepalive
        )
        app = RtdbApp(config)
    except SnapshotError as error:
        print(f"rtdb emulator: {error}", file=sys.stderr)
        raise typer.Exit(EXIT_BAD_SNAPSHOT) from None
    serve(app, host, port, log_level)
