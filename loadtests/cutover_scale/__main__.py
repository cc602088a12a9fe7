"""``make cutover-scale``: plan, backfill, backfill again and verify of N tenants, each timed.

    python -m loadtests.cutover_scale                   # 10,000 tenants (a few minutes)
    python -m loadtests.cutover_scale --tenants 500     # to try it

Starts a throwaway migrated PostgreSQL (the harness's, as the stack's) and the harness's RTDB
emulator, seeds N tenants' storage policies in RTDB (``population``: a realistic mix, legacy nodes
and ``--invalid`` documents a copy must skip included), then runs the cutover tool as ops do, one
process per step, with the database's administrator DSN (``steps``): ``plan``, ``backfill --from
rtdb --to supabase``, the same backfill again (it must write nothing), the same backfill once more
after ``--saves`` tenants saved again in RTDB (a catch-up: it must write exactly those), ``verify``.
Prints a line per step as it ends, then the table (docs/performance.md, "The storage-policy cutover
at scale").

Exit status 0 when every step exited as expected (the planted invalid documents make the backfills
and ``verify`` exit 1), the second backfill wrote nothing and the catch-up wrote exactly the tenants
that saved; 1 otherwise; 130 when interrupted.
Everything started is stopped by PID, also on Ctrl-C and SIGTERM.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import tempfile
import time
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Final

from harness.postgres.migrated import MigratedPostgres
from harness.rtdb.process import RtdbEmulator
from loadtests.cutover_scale import population, steps

MAX_TENANTS: Final = 100_000
NAMESPACE: Final = "botmox-cutover-scale"
DEFAULT_TENANT: Final = "default"
EXIT_INTERRUPTED: Final = 130


@dataclass(frozen=True, slots=True)
class Options:
    tenants: int = 10_000
    invalid: int = 10
    saves: int = 100
    batch_size: int | None = None
    concurrency: int | None = None


def _parser() -> argparse.ArgumentParser:
    defaults = Options()
    parser = argparse.ArgumentParser(
        prog="python -m loadtests.cutover_scale", description=(__doc__ or "").split("\n\n")[0]
    )
    parser.add_argument("--tenants", type=int, default=defaults.tenants, help="tenants (default %(default)s)")
    parser.add_argument(
        "--invalid",
        type=int,
        default=defaults.invalid,
        help="of them, with a document a copy must skip (default %(default)s)",
    )
    parser.add_argument(
        "--saves",
        type=int,
        default=defaults.saves,
        help="tenants that save again before the catch-up (default %(default)s)",
    )
    parser.add_argument("--batch-size", type=int, help="the tool's --batch-size (default: the tool's)")
    parser.add_argument("--concurrency", type=int, help="the tool's --concurrency (default: the tool's)")
    return parser


def options_of(arguments: argparse.Namespace) -> Options:
    options = Options(
        tenants=arguments.tenants,
        invalid=arguments.invalid,
        saves=arguments.saves,
        batch_size=arguments.batch_size,
        concurrency=arguments.concurrency,
    )
    if not 1 <= options.tenants <= MAX_TENANTS:
        raise SystemExit(f"--tenants between 1 and {MAX_TENANTS}")
    if not 0 <= options.invalid <= min(options.tenants, 1000):
        raise SystemExit("--invalid between 0 and the tenants (at most 1000)")
    if not 0 <= options.saves <= options.tenants - options.invalid:
        raise SystemExit("--saves between 0 and the valid tenants")
    if any(value is not None and value < 1 for value in (options.batch_size, options.concurrency)):
        raise SystemExit("--batch-size and --concurrency at least 1")
    return options


CATCH_UP: Final = "catch-up"
SECOND: Final = "backfill again"


def step_specs(options: Options) -> list[steps.StepSpec]:
    """plan, backfill, backfill again, the catch-up after ``saves`` tenants saved, verify, with the
    exit codes the seeded data calls for."""
    tuning: tuple[str, ...] = ()
    if options.batch_size is not None:
        tuning += ("--batch-size", str(options.batch_size))
    if options.concurrency is not None:
        tuning += ("--concurrency", str(options.concurrency))
    findings = 1 if options.invalid else 0
    backfill = ("backfill", "--from", "rtdb", "--to", "supabase", *tuning)
    return [
        steps.StepSpec("plan", ("plan", *tuning), 0),
        steps.StepSpec("backfill", backfill, findings),
        steps.StepSpec(SECOND, backfill, findings),
        steps.StepSpec(CATCH_UP, backfill, findings),
        steps.StepSpec("verify", ("verify", *tuning), findings),
    ]


def _stop_on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def _load() -> str:
    return " ".join(f"{value:.2f}" for value in os.getloadavg())


def _say(message: str) -> None:
    print(f"cutover-scale: {message}", flush=True)


def measure(options: Options, stack: ExitStack) -> list[steps.StepResult]:
    _say(f"load average {_load()} (the figures are the machine's: other work slows them)")
    _say("starting PostgreSQL (migrated) and the RTDB emulator")
    postgres = stack.enter_context(MigratedPostgres.start())
    database = stack.enter_context(postgres.database("cutover_scale"))
    emulator = stack.enter_context(RtdbEmulator())
    work = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="botmox-cutover-scale-")))

    seeded = population.build(options.tenants, invalid=options.invalid)
    began = time.monotonic()
    population.seed(emulator.host, NAMESPACE, seeded)
    _say(
        f"seeded {seeded.tenants:,} tenants in RTDB in {time.monotonic() - began:.1f} s "
        f"({seeded.legacy:,} legacy nodes without a version, {len(seeded.invalid)} invalid documents)"
    )
    environment = steps.tool_environment(
        {
            "APP_ENV": "development",
            "SUPABASE_DB_URL": database.admin_dsn,
            "FIREBASE_DATABASE_URL": emulator.database_url(NAMESPACE),
            "FIREBASE_DATABASE_EMULATOR_HOST": emulator.host,
            "DEFAULT_TENANT_ID": DEFAULT_TENANT,
        }
    )
    results = []
    for spec in step_specs(options):
        if spec.name == CATCH_UP:
            saved = population.save(emulator.host, NAMESPACE, seeded, options.saves)
            _say(f"{saved} tenants saved again in RTDB")
        result = steps.run(spec, environment=environment, cwd=work)
        results.append(result)
        _say(f"{spec.name}: {result.seconds:.1f} s, exit {result.exit_code}")
        if not result.as_expected:
            _say(f"{spec.name} exited {result.exit_code}, not {spec.expected_exit}:\n{result.output_tail}")
    return results


def verdict(results: list[steps.StepResult], *, saves: int) -> list[str]:
    """What went wrong: a step that exited otherwise than expected, a second backfill that wrote, a
    catch-up that did not copy exactly the tenants that saved."""
    problems = [f"{r.name} exited {r.exit_code}, not {r.expected_exit}" for r in results if not r.as_expected]
    writes = {result.name: result.writes for result in results}
    if SECOND in writes and writes[SECOND] != 0:
        problems.append(f"the second backfill wrote {writes[SECOND]} (expected 0)")
    if CATCH_UP in writes and writes[CATCH_UP] != saves:
        problems.append(f"the catch-up wrote {writes[CATCH_UP]} (expected {saves}, the tenants that saved)")
    return problems


def main(argv: list[str] | None = None) -> int:
    options = options_of(_parser().parse_args(argv))
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, _stop_on_sigterm)
    try:
        with ExitStack() as stack:
            results = measure(options, stack)
    except KeyboardInterrupt:
        print("cutover-scale: interrupted; everything it started is stopped", file=sys.stderr, flush=True)
        return EXIT_INTERRUPTED
    print(flush=True)
    for line in steps.table(results):
        print(line)
    problems = verdict(results, saves=options.saves)
    print(f"load average {_load()} at the end")
    for problem in problems:
        print(f"cutover-scale: {problem}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
