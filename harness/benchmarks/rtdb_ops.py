"""Emulator throughput through firebase-admin: get and set per second, sequential and threaded.

Run: ``uv run python harness/benchmarks/rtdb_ops.py [--seconds 3] [--threads 4] [--snapshot]``.
Each phase is bounded both by a count and by time; the emulator is started and stopped here.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from firebase_admin import db

from harness.fixtures.rtdb import firebase_app, unique_namespace
from harness.rtdb.process import RtdbEmulator

MAX_OPERATIONS = 200_000


def _measure(operation: Callable[[int], object], threads: int, seconds: float) -> tuple[int, float]:
    """Runs ``operation`` from ``threads`` threads until the time or count budget is spent."""
    deadline = time.monotonic() + seconds
    budget = MAX_OPERATIONS // threads
    counts = [0] * threads

    def worker(index: int) -> None:
        done = 0
        while done < budget and time.monotonic() < deadline:
            operation(index * budget + done)
            done += 1
        counts[index] = done

    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=threads) as pool:
        list(pool.map(worker, range(threads)))
    return sum(counts), time.monotonic() - started


def _server_cpu_seconds(pid: int | None) -> float | None:
    """CPU time the emulator process has used (Linux /proc), to tell server cost from client cost."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=3.0, help="time per phase")
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--snapshot", action="store_true", help="run with a snapshot file (durable writes)")
    arguments = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        snapshot = Path(scratch) / "snapshot.json" if arguments.snapshot else None
        emulator = RtdbEmulator(snapshot=snapshot)
        started = time.monotonic()
        emulator.start()
        print(f"emulator start: {time.monotonic() - started:.2f} s (snapshot: {snapshot is not None})")
        try:
            with firebase_app(emulator.database_url(unique_namespace("bench"))) as app:
                root = db.reference("/bench", app=app)
                root.set({"value": {"n": 0, "text": "warm"}})

                # firebase-admin shares one requests session (a pool of connections) between threads.
                def do_get(_: int) -> object:
                    return root.child("value").get()

                def do_set(index: int) -> object:
                    root.child(f"items/{index % 1000}").set({"n": index, "text": "x" * 32})
                    return None

                for name, operation in (("get", do_get), ("set", do_set)):
                    for threads in (1, arguments.threads):
                        cpu_before = _server_cpu_seconds(emulator.pid)
                        count, elapsed = _measure(operation, threads, arguments.seconds)
                        cpu_after = _server_cpu_seconds(emulator.pid)
                        rate = count / elapsed
                        cost = ""
                        if cpu_before is not None and cpu_after is not None and count:
                            cost = f", server CPU {1000 * (cpu_after - cpu_before) / count:.3f} ms/op"
                        print(
                            f"{name} threads={threads}: {rate:8.0f} ops/s ({count} in {elapsed:.2f} s{cost})"
                        )
        finally:
            status = emulator.stop()
            print(f"emulator stopped (exit status {status})")


if __name__ == "__main__":
    main()
