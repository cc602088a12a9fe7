"""``make bench``: the floor and the API in each mode, measured in one run (docs/performance.md).

    python -m loadtests.bench                 # about 4 minutes
    python -m loadtests.bench --quick         # 1-second runs, to try it
    python -m loadtests.bench --workers 2     # the API with API_WORKERS=2 (unpinned)
    python -m loadtests.bench --shadow        # the API with STORAGE_POLICY_SHADOW=on

Starts a throwaway migrated PostgreSQL and the harness RTDB emulator (both pinned to the load core),
mints the tenants' tokens, then, one server at a time (pinned to the server core): the API in
supabase mode (which also seeds the tenants' policies in PostgreSQL), the floor, the API in rtdb
mode (seeding the emulator), each measured with wrk. Prints a line per figure as it is measured,
then the table, then the ratios line, last. Writes the figures to ``build/bench/``.

Exit status 0 when the bench ran, also when a figure counted errors: those are flagged in the
table and a note (a failing status would put make's error line after the ratios line); 1 when
something failed; 130 when interrupted. Everything started is stopped by PID, also on Ctrl-C and
SIGTERM.
"""

from __future__ import annotations

import argparse
import signal
import sys
import tempfile
import time
from contextlib import AbstractContextManager, ExitStack
from pathlib import Path
from types import FrameType
from typing import Final

from harness.postgres.migrated import MigratedPostgres
from harness.rtdb.process import RtdbEmulator
from loadtests.bench import proc, servers, tenants, wrk
from loadtests.bench.measure import (
    API_RTDB,
    API_SUPABASE,
    FLOOR,
    Cores,
    Measurer,
    Options,
    ratios,
    table,
    write_json,
)

ROOT: Final = Path(__file__).resolve().parents[2]
OUTPUT: Final = ROOT / "build" / "bench"
JWT_SECRET: Final = "bench-jwt-secret-" + "x" * 32
QUICK: Final = Options(seconds=1, warmup_seconds=1, runs=3)
EXIT_INTERRUPTED: Final = 130


def _parser() -> argparse.ArgumentParser:
    defaults = Options()
    parser = argparse.ArgumentParser(prog="python -m loadtests.bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="1-second runs and warm-ups (to try it)")
    parser.add_argument("--seconds", type=int, help=f"seconds per measured run (default {defaults.seconds})")
    parser.add_argument(
        "--warmup", type=int, help=f"seconds of warm-up per set (default {defaults.warmup_seconds})"
    )
    parser.add_argument(
        "--runs", type=int, help=f"measured runs per figure, the median is kept (default {defaults.runs})"
    )
    parser.add_argument(
        "--connections",
        type=int,
        default=defaults.connections,
        help="connections of the GET and PATCH figures (default %(default)s)",
    )
    parser.add_argument(
        "--wide-connections",
        type=int,
        default=defaults.wide_connections,
        help="connections of the rtdb latency figures (default %(default)s)",
    )
    parser.add_argument(
        "--tenants", type=int, default=defaults.tenants, help="tenants, one token each (default %(default)s)"
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=defaults.workers,
        help="API_WORKERS of the API (default %(default)s; not 1: unpinned)",
    )
    parser.add_argument(
        "--latency-ms",
        type=int,
        default=defaults.latency_ms,
        help="the emulator's slow answer (default %(default)s)",
    )
    parser.add_argument(
        "--shadow",
        action="store_true",
        help="the API with STORAGE_POLICY_SHADOW=on (each GET also compared with the other backend)",
    )
    return parser  # fmt: skip


def options_of(arguments: argparse.Namespace) -> Options:
    base = QUICK if arguments.quick else Options()
    options = Options(
        seconds=arguments.seconds if arguments.seconds is not None else base.seconds,
        warmup_seconds=arguments.warmup if arguments.warmup is not None else base.warmup_seconds,
        runs=arguments.runs if arguments.runs is not None else base.runs,
        connections=arguments.connections,
        wide_connections=arguments.wide_connections,
        tenants=arguments.tenants,
        workers=arguments.workers,
        latency_ms=arguments.latency_ms,
        shadow=arguments.shadow,
    )
    if min(options.seconds, options.runs, options.connections, options.wide_connections) < 1:
        raise SystemExit("--seconds, --runs and the connections must be at least 1")
    if not 1 <= options.tenants <= 10_000 or options.workers < 1 or options.warmup_seconds < 0:
        raise SystemExit("--tenants between 1 and 10000, --workers at least 1, --warmup at least 0")
    if options.seconds > 60:
        raise SystemExit("--seconds at most 60: every run is bounded")
    return options


def _stop_on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def bench(options: Options, stack: ExitStack, work: Path, logs: Path) -> tuple[Measurer, list[str]]:
    # Missing programs fail the bench before anything starts.
    wrk.wrk_path()
    proc.taskset_path()
    cores = Cores.choose(options.workers)
    notes = list(cores.notes)
    if options.shadow:
        # The bench seeds each backend through the API in its own mode, so their policies differ
        # (updated_at): every comparison is a mismatch and writes a log line, the dearest case.
        notes.append("shadow reads on (STORAGE_POLICY_SHADOW=on): every comparison a mismatch, logged")
    for note in notes:
        print(f"bench: {note}", flush=True)
    print("bench: starting PostgreSQL (migrated) and the RTDB emulator", flush=True)
    postgres = stack.enter_context(MigratedPostgres.start())
    database = stack.enter_context(postgres.database("bench"))
    emulator = stack.enter_context(RtdbEmulator())
    if cores.load is not None:
        for pid in (postgres.cluster.pid, emulator.pid):
            if pid is not None:
                proc.pin_tree(pid, {cores.load})

    population = tenants.mint(options.tenants, JWT_SECRET)
    tokens_file = tenants.write_tokens(population, work / "tokens.txt")
    floor_map = tenants.write_floor_map(population, work / "floor-tenants.json")
    measurer = Measurer(options, cores, tokens_file, logs)
    conns, wide = options.connections, options.wide_connections

    def api(mode: str) -> AbstractContextManager[servers.Server]:
        return servers.api(
            mode,
            database=database,
            emulator=emulator,
            jwt_secret=JWT_SECRET,
            workers=options.workers,
            shadow=options.shadow,
            cpus=cores.server,
            log_dir=logs,
        )

    with api("supabase") as server:
        print(f"bench: seeding {len(population)} tenants in PostgreSQL", flush=True)
        tenants.seed(server.url, population)
        for operation in ("GET", "PATCH"):
            measurer.measure(server, API_SUPABASE, operation, conns)

    with servers.floor_app(
        database=database, tenants_map=floor_map, cpus=cores.pinned_server, log_dir=logs
    ) as server:
        for operation in ("GET", "PATCH"):
            measurer.measure(server, FLOOR, operation, conns)

    with api("rtdb") as server:
        print(f"bench: seeding {len(population)} tenants in the emulator", flush=True)
        tenants.seed(server.url, population)
        for operation in ("GET", "PATCH"):
            measurer.measure(server, API_RTDB, operation, conns)
        servers.disarm(emulator)
        measurer.measure(server, API_RTDB, "GET", wide, emulator_latency_ms=0)
        refused = servers.arm_latency(emulator, options.latency_ms)
        if refused is None:
            try:
                measurer.measure(server, API_RTDB, "GET", wide, emulator_latency_ms=options.latency_ms)
            finally:
                servers.disarm(emulator)
        else:
            note = f"rtdb GET at {options.latency_ms} ms: n/a ({refused})"
            print(f"bench: {note}", flush=True)
            notes.append(note)
    return measurer, notes


def main(argv: list[str] | None = None) -> int:
    options = options_of(_parser().parse_args(argv))
    # Ctrl-C and SIGTERM unwind the contexts, which stop what they started (SIGINT too when the
    # shell that started us had it ignored).
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, _stop_on_sigterm)
    OUTPUT.mkdir(parents=True, exist_ok=True)
    logs = OUTPUT / "logs"
    logs.mkdir(exist_ok=True)
    began = time.monotonic()
    try:
        with ExitStack() as stack:
            work = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="botmox-bench-")))
            measurer, notes = bench(options, stack, work, logs)
    except KeyboardInterrupt:
        print("bench: interrupted; everything it started is stopped", file=sys.stderr, flush=True)
        return EXIT_INTERRUPTED
    result = ratios(measurer)
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    path = write_json(
        OUTPUT / f"bench-{stamp}.json",
        options=options,
        cores=measurer.cores,
        figures=measurer.figures,
        result=result,
        notes=notes,
    )
    print(flush=True)
    for line in table(measurer.figures):
        print(line)
    for note in notes:
        print(f"note: {note}")
    errors = sum(figure.errors for figure in measurer.figures)
    if errors:
        print(f"note: {errors} errors (non-2xx answers or failed requests): the flagged figures are suspect")
    elapsed = time.monotonic() - began
    print(f"bench: {elapsed:.0f} s; figures in {path.relative_to(ROOT)}, logs in {logs.relative_to(ROOT)}")
    print(result.line(), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
