"""``make agents-scale``: 1,000 simulated agents on one API worker, each heartbeating and commanded.

    python -m loadtests.agents_scale                    # 1,000 agents, 4 processes (~2 minutes)
    python -m loadtests.agents_scale --agents 100       # to try it

Brings up a private native stack (``python -m harness up --detach --backend supabase --api-workers 1``
in a temporary ``BOTMOX_HARNESS_HOME``; its API's rate limit raised, since every simulated agent
shares 127.0.0.1 and the per-address limit would count them as one client), pairs the agents with the
internal infra token, runs them in a fleet of a few processes (``harness.fixtures.agent_fleet``), and
measures (``measure``): commands per second, a command's round trip (p50, p99), the API process's
memory per connected agent, heartbeats, and the reconnect arrivals after the API restarts. Prints a
line per phase, then the closing note (``figures.table``; docs/performance.md).

Exit status 0 when every command succeeded exactly once, every agent was commanded and every agent
came back after the restart; 1 otherwise; 130 when interrupted. The stack is always brought down and
the fleet stopped by PID, also on Ctrl-C and SIGTERM.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from types import FrameType
from typing import Final

from harness.fixtures.agent_fleet import raise_open_files_limit
from harness.fixtures.cli_stack import cli_environment, run_cli, stop_everything, transcript
from harness.stack.state import HarnessPaths, StackState, load
from loadtests.agents_scale.figures import table, verdict
from loadtests.agents_scale.measure import Options, ScaleTarget, measure

MAX_AGENTS: Final = 10_000
EXIT_INTERRUPTED: Final = 130
UP_TIMEOUT_S: Final = 300.0
BACKEND: Final = "supabase"
# A variable the API ignores: toggling it makes `flip` restart the API in the same mode.
RESTART_VARIABLE: Final = "BOTMOX_SCALE_RESTART"
# Every simulated agent connects from 127.0.0.1; the per-address limit must not count them as one.
RATE_LIMIT: Final = "API_RATE_LIMIT_MAX=1000000"
# Sockets of the API (one per agent) and of each fleet process; children inherit the raised limit.
OPEN_FILES: Final = 65_536


def _parser() -> argparse.ArgumentParser:
    defaults = Options()
    parser = argparse.ArgumentParser(
        prog="python -m loadtests.agents_scale", description=(__doc__ or "").split("\n\n")[0]
    )
    parser.add_argument("--agents", type=int, default=defaults.agents, help="default %(default)s")
    parser.add_argument("--processes", type=int, default=defaults.processes, help="fleet processes")
    parser.add_argument(
        "--command-seconds", type=float, default=defaults.command_seconds, help="default %(default)s"
    )
    parser.add_argument("--enqueuers", type=int, default=defaults.enqueuers, help="concurrent enqueue loops")
    parser.add_argument("--no-restart", action="store_true", help="skip the API restart and reconnect phase")
    return parser


def options_of(arguments: argparse.Namespace) -> Options:
    options = Options(
        agents=arguments.agents,
        processes=arguments.processes,
        command_seconds=arguments.command_seconds,
        enqueuers=arguments.enqueuers,
        restart=not arguments.no_restart,
    )
    if not 1 <= options.agents <= MAX_AGENTS:
        raise SystemExit(f"--agents between 1 and {MAX_AGENTS}")
    if not 1 <= options.processes <= 64 or not 1 <= options.enqueuers <= 256:
        raise SystemExit("--processes between 1 and 64, --enqueuers between 1 and 256")
    if not 0 < options.command_seconds <= 600:
        raise SystemExit("--command-seconds between 0 and 600")
    return options


def _say(message: str) -> None:
    print(f"agents-scale: {message}", flush=True)


def _stop_on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


@contextlib.contextmanager
def private_stack(home: Path) -> Iterator[tuple[StackState, ScaleTarget]]:
    """A native stack of its own, one API worker; ``down`` whatever happens."""
    paths = HarnessPaths(home)
    environment = cli_environment(home)
    started: StackState | None = None
    try:
        up = run_cli(
            environment,
            *("up", "--detach", "--backend", BACKEND, "--runtime", "native", "--api-workers", "1"),
            *("--api-env", RATE_LIMIT),
            timeout_s=UP_TIMEOUT_S,
        )
        started = load(paths)
        if up.returncode != 0 or started is None:
            raise RuntimeError(f"`python -m harness up` failed: {transcript(up)}")
        restarts = iter(range(1, 1_000_000))

        def restart_api() -> None:
            result = run_cli(
                environment,
                *("flip", "--backend", BACKEND, "--api-env", f"{RESTART_VARIABLE}={next(restarts)}"),
            )
            if result.returncode != 0:
                raise RuntimeError(f"restarting the API failed: {transcript(result)}")

        def api_pid() -> int:
            state = load(paths)
            assert state is not None
            return state.processes["api"].pid

        yield (
            started,
            ScaleTarget(
                api_url=started.api_url,
                infra_token=started.internal_infra_token,
                database_url=started.supabase_db_url,
                api_pid=api_pid,
                restart_api=restart_api,
            ),
        )
    finally:
        stop_everything(paths, environment, started)


def main(argv: list[str] | None = None) -> int:
    options = options_of(_parser().parse_args(argv))
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, _stop_on_sigterm)
    raise_open_files_limit(OPEN_FILES)
    try:
        with tempfile.TemporaryDirectory(prefix="botmox-agents-scale-") as work:
            _say("starting a native stack (PostgreSQL, emulator, API with one worker)")
            with private_stack(Path(work) / "harness-home") as (_state, target):
                figures = asyncio.run(measure(target, options, Path(work), _say))
    except KeyboardInterrupt:
        print("agents-scale: interrupted; everything it started is stopped", file=sys.stderr, flush=True)
        return EXIT_INTERRUPTED
    print(flush=True)
    for line in table(figures):
        print(line)
    print(f"load average {figures.load_average} at the end (the figures are the machine's)")
    problems = verdict(figures)
    for problem in problems:
        print(f"agents-scale: {problem}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
