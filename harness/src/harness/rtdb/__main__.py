"""``python -m harness.rtdb --host 127.0.0.1 --port 9000 [--snapshot FILE]``: run the emulator.

An internal entry point, not a command of ``python -m harness``: the stack, the fixtures
(``harness.rtdb.process``) and the rtdb image start the emulator this way, and that image holds this
package alone with uvicorn (harness/docker/rtdb/Dockerfile), so it parses with the standard library.
"""

from __future__ import annotations

import argparse
import signal
import socket
import sys
from pathlib import Path

import uvicorn

from harness.rtdb.server import EmulatorConfig, RtdbApp
from harness.rtdb.snapshot import SnapshotError


class _StreamClosingServer(uvicorn.Server):
    """Ends open event streams first on shutdown; uvicorn would otherwise wait for them forever."""

    def __init__(self, config: uvicorn.Config, app: RtdbApp) -> None:
        super().__init__(config)
        self._rtdb = app

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        self._rtdb.close_streams()
        await super().shutdown(sockets)


def _arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m harness.rtdb", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9000)
    parser.add_argument("--snapshot", type=Path, help="JSON file every acknowledged write is saved to")
    parser.add_argument("--default-namespace", default="default", help="namespace when ?ns= is absent")
    parser.add_argument("--keepalive", type=float, default=1.0, help="seconds between keep-alive events")
    parser.add_argument("--log-level", default="warning")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    arguments = _arguments(argv)
    try:
        app = RtdbApp(
            EmulatorConfig(
                snapshot=arguments.snapshot,
                default_namespace=arguments.default_namespace,
                keepalive_seconds=arguments.keepalive,
            )
        )
    except SnapshotError as error:
        print(f"rtdb emulator: {error}", file=sys.stderr)
        return 2
    config = uvicorn.Config(
        app,
        host=arguments.host,
        port=arguments.port,
        lifespan="on",
        log_level=arguments.log_level,
        access_log=False,
        timeout_graceful_shutdown=5,
    )
    # uvicorn re-raises the signal it stopped on once it is done; with this no-op handler in place
    # a SIGTERM stop ends in exit status 0, which tells the wrapper the shutdown was clean.
    signal.signal(signal.SIGTERM, lambda _signum, _frame: None)
    _StreamClosingServer(config, app).run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
