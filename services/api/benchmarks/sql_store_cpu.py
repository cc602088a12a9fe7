"""CPU and wall time per call of the SQL storage-policy store alone (no HTTP, no API).

Starts a throwaway migrated PostgreSQL (``harness.postgres.migrated.MigratedPostgres``), then on one
``SqlStoragePolicyStore`` logged in as ``botmox_api`` runs, per operation, ``--rounds`` rounds of
``--calls`` sequential calls (reads, merges and replaces over ``--tenants`` tenants, after a warm-up
that prepares every statement on the connection) and prints, per round, the store process's CPU time
(``time.process_time``: the client's share only, PostgreSQL runs in other processes) and the wall
time per call. The median round is the figure to compare.

    uv run python services/api/benchmarks/sql_store_cpu.py --calls 2000 --rounds 3

Not a test: it asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from collections.abc import Awaitable, Callable

from botmox_api.model import StoragePolicyChanges
from botmox_api.stores.supabase_sql import SqlStoragePolicyStore
from harness.postgres.migrated import MigratedPostgres


async def _measure(dsn: str, calls: int, rounds: int, tenants: int) -> None:
    store = SqlStoragePolicyStore(dsn)
    names = [f"bench-{index}" for index in range(tenants)]
    operations: dict[str, Callable[[int], Awaitable[object]]] = {
        "read": lambda i: store.read(names[i % tenants], uid="bench"),
        "merge": lambda i: store.merge(
            names[i % tenants], StoragePolicyChanges(sync_enabled=i % 2 == 0), updated_by="bench"
        ),
        "replace": lambda i: store.replace(
            names[i % tenants], StoragePolicyChanges(operational="local"), updated_by="bench"
        ),
    }
    try:
        for operation in operations.values():  # creates every row, prepares every statement
            for index in range(tenants):
                await operation(index)
        print(f"{'operation':<9} {'calls':>6} {'cpu us/call':>12} {'wall us/call':>13}")
        for name, operation in operations.items():
            cpu: list[float] = []
            wall: list[float] = []
            for _ in range(rounds):
                cpu_start, wall_start = time.process_time(), time.perf_counter()
                for index in range(calls):
                    await operation(index)
                cpu.append((time.process_time() - cpu_start) / calls * 1e6)
                wall.append((time.perf_counter() - wall_start) / calls * 1e6)
            print(f"{name:<9} {calls:>6} {statistics.median(cpu):>12.1f} {statistics.median(wall):>13.1f}")
    finally:
        await store.aclose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--calls", type=int, default=2000, help="sequential calls per round")
    parser.add_argument("--rounds", type=int, default=3, help="rounds per operation (the median is printed)")
    parser.add_argument("--tenants", type=int, default=50, help="tenants the calls cycle over")
    args = parser.parse_args()
    with MigratedPostgres.start() as server, server.database("sql_store_cpu") as database:
        asyncio.run(_measure(database.api_dsn, args.calls, args.rounds, args.tenants))


if __name__ == "__main__":
    main()
