"""Throughput and latency of ``GET`` / ``PATCH /api/v1/settings/storage_policy`` per data backend.

Starts a throwaway migrated PostgreSQL (``harness.postgres.migrated.MigratedPostgres``, a
``PostgresCluster`` with the Supabase migrations) and the harness RTDB emulator, then for each mode
one uvicorn worker (``python -m botmox_api``, a subprocess), waits for ``/api/v1/health/ready``, and
drives it from a separate load process (asyncio + httpx, N concurrent connections, bounded by a
request count and a time limit) with a user JWT. Prints requests/s, p50/p99 latency and the error
count per mode and operation. Everything started is stopped by PID.

    uv run python services/api/benchmarks/storage_policy_rps.py \
        --requests 3000 --seconds 20 --concurrency 32 --modes rtdb,supabase

With ``--health-flood N`` each mode also runs the PATCH load again while a second load process
floods ``/api/v1/health/ready`` over N connections (bounded by ``--health-requests`` and the same
time limit): rows ``PATCH+H`` (the user PATCHes under the flood) and ``HEALTH`` (the flood itself).

Not a test: it asserts nothing but exits 1 when any request failed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import asdict, dataclass, replace
from typing import Final

import httpx
import jwt

from harness import processes
from harness.postgres.migrated import MigratedPostgres, PgDatabase
from harness.rtdb.process import RtdbEmulator

JWT_SECRET: Final = "bench-jwt-secret-" + "x" * 32
POLICY_PATH: Final = "/api/v1/settings/storage_policy"
READY_PATH: Final = "/api/v1/health/ready"
READY_TIMEOUT_S: Final = 30.0
STOP_TIMEOUT_S: Final = 10.0
OPERATIONS: Final = ("GET", "PATCH")
HEALTH: Final = "HEALTH"
MODES: Final = ("rtdb", "supabase")


@dataclass(frozen=True)
class LoadResult:
    operation: str
    requests: int
    errors: int
    seconds: float
    p50_ms: float
    p99_ms: float

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0


# -- load process -----------------------------------------------------------------------------


def _percentile(sorted_values: Sequence[float], fraction: float) -> float:
    if not sorted_values:
        return 0.0
    index = min(len(sorted_values) - 1, max(0, round(fraction * len(sorted_values)) - 1))
    return sorted_values[index]


async def _drive(
    base_url: str, token: str, operation: str, total: int, seconds: float, concurrency: int
) -> LoadResult:
    headers = {"Authorization": f"Bearer {token}"}
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    latencies: list[float] = []
    errors = 0
    issued = 0
    deadline = time.perf_counter() + seconds

    async with httpx.AsyncClient(base_url=base_url, limits=limits, timeout=30) as client:

        async def worker() -> None:
            nonlocal issued, errors
            while issued < total and time.perf_counter() < deadline:
                number = issued
                issued += 1
                began = time.perf_counter()
                try:
                    if operation == HEALTH:
                        response = await client.get(READY_PATH)  # no token: health needs none
                    elif operation == "GET":
                        response = await client.get(POLICY_PATH, headers=headers)
                    else:
                        body = (
                            {"operational": "local" if number % 2 else "cloud"}
                            if number % 3
                            else {"sync": {"enabled": bool(number % 2)}}
                        )
                        response = await client.patch(POLICY_PATH, json=body, headers=headers)
                except httpx.TransportError:  # a timeout under a flood is a failed request, not a crash
                    errors += 1
                    continue
                latencies.append((time.perf_counter() - began) * 1000)
                if response.status_code != 200:
                    errors += 1

        began = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - began
    latencies.sort()
    return LoadResult(
        operation, len(latencies), errors, elapsed, _percentile(latencies, 0.5), _percentile(latencies, 0.99)
    )


def _load_main(arguments: argparse.Namespace) -> None:
    result = asyncio.run(
        _drive(
            arguments.url,
            arguments.token,
            arguments.operation,
            arguments.requests,
            arguments.seconds,
            arguments.concurrency,
        )
    )
    print(json.dumps(asdict(result)))


def _start_load(
    url: str, token: str, operation: str, requests: int, seconds: float, concurrency: int
) -> subprocess.Popen[str]:
    """Starts the load generator in its own process, so it does not share a CPU budget with the
    orchestration (it still shares the machine's cores with the server)."""
    command = [sys.executable, __file__, "_load", "--url", url, "--token", token, "--operation", operation]
    command += ["--requests", str(requests), "--seconds", str(seconds), "--concurrency", str(concurrency)]
    # The command is this interpreter and this file with our own arguments.
    return subprocess.Popen(command, stdout=subprocess.PIPE, text=True)  # noqa: S603


def _load_result(process: subprocess.Popen[str], seconds: float) -> LoadResult:
    try:
        stdout, _ = process.communicate(timeout=seconds + 60)
    except subprocess.TimeoutExpired:
        _stop(process)
        raise
    if process.returncode != 0:
        raise RuntimeError(f"load process exited with {process.returncode}")
    return LoadResult(**json.loads(stdout.strip().splitlines()[-1]))


def _run_load(url: str, token: str, operation: str, arguments: argparse.Namespace) -> LoadResult:
    process = _start_load(url, token, operation, arguments.requests, arguments.seconds, arguments.concurrency)
    return _load_result(process, arguments.seconds)


def _run_patch_under_health_flood(url: str, token: str, arguments: argparse.Namespace) -> list[LoadResult]:
    flood = _start_load(
        url, token, HEALTH, arguments.health_requests, arguments.seconds, arguments.health_flood
    )
    try:
        patch = _run_load(url, token, "PATCH", arguments)
    finally:
        health = _load_result(flood, arguments.seconds)
    return [replace(patch, operation="PATCH+H"), health]


# -- server processes -------------------------------------------------------------------------


def _user_token(tenant: str) -> str:
    now = int(time.time())
    claims: dict[str, object] = {"sub": "bench-user", "aud": "authenticated", "iat": now, "exp": now + 3600}
    claims["app_metadata"] = {"tenant_id": tenant}
    return jwt.encode(claims, JWT_SECRET, algorithm="HS256")


def _stop(process: subprocess.Popen[bytes] | subprocess.Popen[str]) -> None:
    # Children of ours share the benchmark's process group: stop the one pid, not the group.
    processes.stop_child(process, ladder=processes.terminate(STOP_TIMEOUT_S), whole_group=False)


@contextmanager
def _api_server(mode: str, database: PgDatabase, emulator: RtdbEmulator, workdir: str) -> Iterator[str]:
    port = processes.free_port()
    env = {key: value for key, value in os.environ.items() if not key.startswith(("SUPABASE_", "FIREBASE_"))}
    env.update(
        {
            "HOST": "127.0.0.1",
            "PORT": str(port),
            "DATA_BACKEND": mode,
            "SUPABASE_DB_URL": database.api_dsn,
            "SUPABASE_JWT_SECRET": JWT_SECRET,
            "FIREBASE_DATABASE_EMULATOR_HOST": emulator.host,
            "FIREBASE_DATABASE_URL": f"https://bench-{mode}.firebaseio.com",
            "LOG_LEVEL": "warning",
            "API_RATE_LIMIT_MAX": "100000000",
        }
    )
    # cwd is an empty directory so no stray .env is read.
    process = subprocess.Popen([sys.executable, "-m", "botmox_api"], env=env, cwd=workdir)
    try:
        url = f"http://127.0.0.1:{port}"
        _wait_ready(url, process)
        yield url
    finally:
        _stop(process)


def _wait_ready(url: str, process: subprocess.Popen[bytes]) -> None:
    def answered() -> bool | None:
        try:
            return True if httpx.get(url + READY_PATH, timeout=2).status_code == 200 else None
        except httpx.TransportError:
            return None

    processes.wait_ready(
        "botmox_api",
        answered,
        alive=lambda: process.poll() is None,
        timeout_s=READY_TIMEOUT_S,
        log_path=None,
        waiting_for=f"{url}{READY_PATH} answering 200",
    )


def _bench_mode(
    mode: str, database: PgDatabase, emulator: RtdbEmulator, arguments: argparse.Namespace
) -> list[LoadResult]:
    token = _user_token(f"bench-{mode}")
    with (
        tempfile.TemporaryDirectory(prefix="botmox-bench-") as workdir,
        _api_server(mode, database, emulator, workdir) as url,
    ):
        created = httpx.put(
            url + POLICY_PATH, json={"operational": "cloud"}, headers={"Authorization": f"Bearer {token}"}
        )
        created.raise_for_status()
        results = [_run_load(url, token, operation, arguments) for operation in OPERATIONS]
        if arguments.health_flood:
            results += _run_patch_under_health_flood(url, token, arguments)
        return results


def _bench_main(arguments: argparse.Namespace) -> int:
    modes = [mode.strip() for mode in arguments.modes.split(",") if mode.strip()]
    unknown = set(modes) - set(MODES)
    if unknown:
        raise SystemExit(f"unknown mode(s): {', '.join(sorted(unknown))}")
    print(
        f"cpus={os.cpu_count()} requests={arguments.requests} seconds={arguments.seconds} "
        f"concurrency={arguments.concurrency} health_flood={arguments.health_flood}"
    )
    print(f"{'mode':<9} {'op':<6} {'requests':>8} {'errors':>6} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8}")
    failed = 0
    with ExitStack() as stack:
        postgres = stack.enter_context(MigratedPostgres.start())
        database = stack.enter_context(postgres.database("bench"))
        emulator = stack.enter_context(RtdbEmulator())
        for mode in modes:
            for result in _bench_mode(mode, database, emulator, arguments):
                failed += result.errors
                print(
                    f"{mode:<9} {result.operation:<6} {result.requests:>8} {result.errors:>6} "
                    f"{result.rps:>8.0f} {result.p50_ms:>8.1f} {result.p99_ms:>8.1f}",
                    flush=True,
                )
    return 1 if failed else 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--requests", type=int, default=3000, help="requests per mode and operation (default 3000)"
    )
    parser.add_argument(
        "--seconds", type=float, default=20.0, help="time limit per mode and operation (default 20)"
    )
    parser.add_argument("--concurrency", type=int, default=32, help="concurrent connections (default 32)")
    parser.add_argument("--modes", default="rtdb,supabase", help="comma-separated: rtdb, supabase")
    parser.add_argument(
        "--health-flood",
        type=int,
        default=0,
        help="connections flooding /health/ready during a second PATCH run (default 0: no such run)",
    )
    parser.add_argument(
        "--health-requests",
        type=int,
        default=100_000,
        help="request cap of the health flood (default 100000)",
    )
    sub = parser.add_subparsers(dest="command")
    load = sub.add_parser("_load", help=argparse.SUPPRESS)
    load.add_argument("--url", required=True)
    load.add_argument("--token", required=True)
    load.add_argument("--operation", choices=(*OPERATIONS, HEALTH), required=True)
    load.add_argument("--requests", type=int, required=True)
    load.add_argument("--seconds", type=float, required=True)
    load.add_argument("--concurrency", type=int, required=True)
    return parser


def main() -> None:
    arguments = _parser().parse_args()
    if arguments.command == "_load":
        _load_main(arguments)
        return
    sys.exit(_bench_main(arguments))


if __name__ == "__main__":
    main()
