"""``make load``: bring the stack up (native runtime) when it is not, run one locust scenario headless
per mode, print a table per mode and the modes side by side, check ``thresholds.toml``, and stop
what it started. Exit 0 when every threshold holds, 1 when one is missed (each named), 2 on misuse.

    python -m loadtests.run --backend both --users 8 --duration 20s --scenario storage_policy

``--api-workers N`` starts the stack's API with N uvicorn workers; a stack that already runs is used
as it is, and refused when its API has another count.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
from pathlib import Path

from botmox_api.config import MAX_API_WORKERS
from harness.stack.state import HarnessPaths, StackState, load
from loadtests.report import mode_table, read_exceptions, read_stats, side_by_side, tabs_line
from loadtests.thresholds import AGGREGATED, Row, ThresholdsError, check, read

ROOT = Path(__file__).resolve().parent.parent
SCENARIOS = {"storage_policy": "StoragePolicyUser", "settings": "SettingsUser", "frontend": "FrontendUser"}
REPORTS = ROOT / "build" / "loadtests"
MAX_SECONDS = 600  # no run is longer, whatever DURATION says


def seconds_of(duration: str) -> int:
    """``20s``, ``2m``, ``1m30s`` or a bare number of seconds; at most ``MAX_SECONDS``."""
    match = re.fullmatch(r"(?:(\d+)m)?(?:(\d+)s?)?", duration.strip())
    if not duration.strip() or match is None or not any(match.groups()):
        raise ValueError(f"DURATION {duration!r}: expected e.g. 20s, 2m or 1m30s")
    total = int(match.group(1) or 0) * 60 + int(match.group(2) or 0)
    if not 1 <= total <= MAX_SECONDS:
        raise ValueError(f"DURATION {duration!r}: between 1s and {MAX_SECONDS}s")
    return total


def _harness(*args: str) -> None:
    print(f"load: python -m harness {' '.join(args)}", flush=True)
    subprocess.run([sys.executable, "-m", "harness", *args], cwd=ROOT, check=True, timeout=600)  # noqa: S603


def _running(paths: HarnessPaths) -> StackState | None:
    state = load(paths)
    return state if state is not None and state.is_alive() else None


def _locust(
    state: StackState, mode: str, scenario: str, users: int, seconds: int, reports: Path
) -> tuple[Path, Path]:
    out = reports / mode
    out.mkdir(parents=True, exist_ok=True)
    prefix, extras = out / scenario, out / f"{scenario}_extras.json"
    final = out / f"{scenario}_final_stats.csv"
    extras.unlink(missing_ok=True)
    final.unlink(missing_ok=True)
    command = [
        sys.executable, "-m", "locust",
        "-f", str(ROOT / "loadtests" / "locustfile.py"),
        "--headless", "--only-summary",
        "--users", str(users), "--spawn-rate", str(max(users, 1)),
        "--run-time", f"{seconds}s", "--stop-timeout", "5",
        "--host", state.api_url,
        "--csv", str(prefix), "--html", str(out / f"{scenario}.html"),
        "--exit-code-on-error", "0", "--loglevel", "WARNING",
        SCENARIOS[scenario],
    ]  # fmt: skip
    print(f"load: {mode}: {scenario}, {users} users, {seconds}s against {state.api_url}", flush=True)
    env = {**os.environ, "LOAD_EXTRAS": str(extras), "LOAD_FINAL_STATS": str(final)}
    log = out / f"{scenario}.log"
    with log.open("w") as handle:
        done = subprocess.run(command, cwd=ROOT, env=env, timeout=seconds + 120, stdout=handle, stderr=handle)  # noqa: S603
    if done.returncode != 0 or not final.exists():
        print(log.read_text()[-4000:], file=sys.stderr)
        raise subprocess.CalledProcessError(done.returncode, command[:4])
    return final, extras


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m loadtests.run", description=__doc__.split("\n\n")[0])
    parser.add_argument("--backend", choices=("rtdb", "supabase", "both"), default="both")
    parser.add_argument("--users", type=int, default=8)
    parser.add_argument("--duration", default="30s")
    parser.add_argument("--scenario", choices=tuple(SCENARIOS), default="storage_policy")
    parser.add_argument("--thresholds", type=Path, default=ROOT / "loadtests" / "thresholds.toml")
    parser.add_argument("--reports", type=Path, default=REPORTS, help="where the reports go, per mode")
    parser.add_argument("--api-workers", type=int, default=None, help="the API's uvicorn workers (default 1)")
    options = parser.parse_args(argv)
    try:
        seconds = seconds_of(options.duration)
        thresholds = read(options.thresholds)
    except (ValueError, OSError) as error:  # ThresholdsError is a ValueError
        print(f"load: {error}", file=sys.stderr)
        return 2
    if not 1 <= options.users <= 500:
        print("load: USERS must be between 1 and 500", file=sys.stderr)
        return 2
    if options.api_workers is not None and not 1 <= options.api_workers <= MAX_API_WORKERS:
        print(f"load: API_WORKERS must be between 1 and {MAX_API_WORKERS}", file=sys.stderr)
        return 2
    modes = ["rtdb", "supabase"] if options.backend == "both" else [options.backend]

    paths = HarnessPaths.default()
    state = _running(paths)
    if state is not None and options.api_workers not in (None, state.api_workers):
        print(
            f"load: the running stack's API has {state.api_workers} worker(s), not {options.api_workers}: "
            "stop it (`python -m harness down`) or leave API_WORKERS unset",
            file=sys.stderr,
        )
        return 2
    started = state is None
    original = state.data_backend if state else None
    workers = state.api_workers if state else options.api_workers or 1
    by_mode: dict[str, list[Row]] = {}
    missed: list[str] = []
    try:
        if started:
            _harness(
                "up", "--detach", "--runtime", "native", "--backend", modes[0], "--api-workers", str(workers)
            )
        for mode in modes:
            state = _running(paths)
            assert state is not None, "the harness stack stopped"
            if state.data_backend != mode:
                _harness("flip", "--backend", mode)
                state = _running(paths)
                assert state is not None, "the harness stack stopped"
            stats, extras_file = _locust(
                state, mode, options.scenario, options.users, seconds, options.reports
            )
            rows = [row for row in read_stats(stats) if row.requests or row.name == AGGREGATED]
            extras = json.loads(extras_file.read_text()) if extras_file.exists() else {}
            by_mode[mode] = rows
            missed += check(thresholds, mode, rows)
            if not any(row.requests for row in rows):
                # A run that measured nothing holds every latency limit: it must not pass.
                missed.append(f"{mode}: no request was measured (see {stats.parent}/{options.scenario}.log)")
            if raised := read_exceptions(stats.with_name(f"{options.scenario}_exceptions.csv")):
                missed.append(f"{mode}: the locust users raised {raised} exceptions (see {stats.parent})")
            print(
                f"\n== {mode} ({options.scenario}, {options.users} users, {seconds}s, "
                f"{workers} API worker{'s' if workers > 1 else ''}) =="
            )
            print(mode_table(rows, extras.get("conflicts", {})))
            if options.scenario == "frontend":
                total = next(row for row in rows if row.name == AGGREGATED)
                limit = thresholds.limits(mode, AGGREGATED).get("p95_ms")
                last = next((row.rps for row in rows if row.name == "GET storage_policy"), 0.0)
                print(tabs_line(options.users, last, total.p95_ms, limit))
            print(f"reports: {stats.parent}/{options.scenario}.html, {stats.name}", flush=True)
    except (
        subprocess.CalledProcessError,
        subprocess.TimeoutExpired,
        AssertionError,
        ThresholdsError,
    ) as error:
        print(f"load: {error}", file=sys.stderr)
        return 1
    finally:
        if started:
            _harness("down")
        elif original is not None and (now := _running(paths)) and now.data_backend != original:
            _harness("flip", "--backend", original)
    if len(by_mode) > 1:
        print("\n== side by side ==")
        print(side_by_side(by_mode))
    if missed:
        print("\nload: thresholds missed:", *missed, sep="\n  ", file=sys.stderr)
        return 1
    print("\nload: every threshold holds")
    return 0


if __name__ == "__main__":
    sys.exit(main())
