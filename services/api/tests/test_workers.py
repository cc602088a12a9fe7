"""``API_WORKERS``: ``python -m botmox_api`` as uvicorn's supervisor of several worker processes.

The harness stops the API by its PID, which is then the supervisor's: its workers must go with it.
Each worker keeps its own rate-limit counters, so a principal gets at most ``API_WORKERS`` times
``API_RATE_LIMIT_MAX`` requests per window (docs/api.md, "Workers").
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections import Counter
from pathlib import Path

import httpx
import pytest
from api_support import API_TOKEN, INFRA_TOKEN, JWT_SECRET, clean_env, server_process, user, wait_for

from harness.processes import ProcessIdentity, free_port, identify, is_running

WORKERS = 2
RATE_LIMIT_MAX = 5
REQUESTS = 12
pytestmark = pytest.mark.slow


def _children(pid: int) -> list[ProcessIdentity]:
    found = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        for child in (task / "children").read_text().split():
            if (identity := identify(int(child))) is not None:
                found.append(identity)
    return found


def _is_worker(identity: ProcessIdentity) -> bool:
    # uvicorn spawns its workers through multiprocessing; the other child is its resource tracker.
    return b"spawn_main" in Path(f"/proc/{identity.pid}/cmdline").read_bytes()


def _children_up(process: subprocess.Popen[str], port: int) -> list[ProcessIdentity]:
    """Waits until the supervisor has its workers and the API answers; returns every child."""
    wait_for(f"http://127.0.0.1:{port}/api/v1/health/live", process)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        children = _children(process.pid)
        if sum(map(_is_worker, children)) >= WORKERS:
            return children
        time.sleep(0.1)
    pytest.fail(f"the supervisor has {len(_children(process.pid))} children, expected {WORKERS} workers")


def _env(port: int, **extra: str) -> dict[str, str]:
    return clean_env(
        API_WORKERS=str(WORKERS),
        PORT=str(port),
        INTERNAL_API_TOKEN=API_TOKEN,
        LOG_FORMAT="json",
        **extra,
    )


def test_stopping_the_supervisor_by_pid_stops_every_worker(tmp_path: Path) -> None:
    port = free_port()
    with server_process(_env(port), tmp_path) as process:
        children = _children_up(process, port)
        workers = [child for child in children if _is_worker(child)]
        assert len(workers) == WORKERS
        os.kill(process.pid, signal.SIGTERM)  # the supervisor alone, as `harness down` finds it by PID
        assert process.wait(timeout=30) == 0
        # The supervisor waits for its workers before it exits.
        assert [worker.pid for worker in workers if is_running(worker)] == []
        # Its resource tracker leaves when the supervisor's end of their pipe closes.
        deadline = time.monotonic() + 10
        while any(map(is_running, children)) and time.monotonic() < deadline:
            time.sleep(0.05)
    assert [child.pid for child in children if is_running(child)] == []


def test_each_worker_counts_the_rate_limit_apart(tmp_path: Path) -> None:
    port = free_port()
    env = _env(
        port,
        API_RATE_LIMIT_MAX=str(RATE_LIMIT_MAX),
        API_RATE_LIMIT_WINDOW_S="3600",
        SUPABASE_JWT_SECRET=JWT_SECRET,
    )
    attempts = WORKERS * RATE_LIMIT_MAX * 4
    with server_process(env, tmp_path) as process:
        _children_up(process, port)
        statuses: Counter[int] = Counter()
        for _ in range(attempts):
            # A fresh connection each time: the kernel may hand it to either worker.
            with httpx.Client(timeout=5, trust_env=False) as client:
                # One user, one principal (internal principals are never limited).
                response = client.get(f"http://127.0.0.1:{port}/api/v1/auth/verify", headers=user())
            statuses[response.status_code] += 1
    assert set(statuses) <= {200, 429}, statuses
    # The documented bound: at most API_WORKERS x API_RATE_LIMIT_MAX successes in a window.
    assert RATE_LIMIT_MAX <= statuses[200] <= WORKERS * RATE_LIMIT_MAX, statuses
    assert statuses[429] == attempts - statuses[200]


def _environ_of(pid: int) -> dict[str, str]:
    entries = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    return dict(entry.decode().split("=", 1) for entry in entries if b"=" in entry)


def test_metrics_are_summed_across_workers_through_a_directory_of_this_start(tmp_path: Path) -> None:
    port = free_port()
    env = _env(port, INTERNAL_INFRA_TOKEN=INFRA_TOKEN)
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    with server_process(env, tmp_path) as process:
        children = _children_up(process, port)
        workers = [child for child in children if _is_worker(child)]
        directory = Path(_environ_of(workers[0].pid)["PROMETHEUS_MULTIPROC_DIR"])
        assert {_environ_of(worker.pid)["PROMETHEUS_MULTIPROC_DIR"] for worker in workers} == {str(directory)}
        answers = []
        for _ in range(6):
            response = httpx.get(
                f"http://127.0.0.1:{port}/metrics",
                headers={"Authorization": f"Bearer {INFRA_TOKEN}"},
                timeout=5,
            )
            assert response.status_code == 200
            answers.append(response.text)
        # Every worker answers with the sum over all of them: each wrote its own files.
        assert "botmox_api_agents_connected 0.0" in answers[0]
        assert "botmox_api_agent_connections_total 0.0" in answers[0]
        # Each worker writes its values to files of its own once its app is built (the second may
        # still be starting when the first answers).
        expected = {str(worker.pid) for worker in workers}
        deadline = time.monotonic() + 30
        while {path.stem.rsplit("_", 1)[-1] for path in directory.glob("*.db")} != expected:
            assert time.monotonic() < deadline, "a worker wrote no metrics files"
            time.sleep(0.1)
        # The request series too: each request counted once, by whichever worker took its
        # connection (a new one each), and every worker's answer holds the sum.
        for _ in range(REQUESTS):
            assert httpx.get(f"http://127.0.0.1:{port}/api/v1/agents", timeout=5).status_code == 401
        refused = '{backend="rtdb",method="GET",route="/api/v1/agents",status="401"}'
        observed = '{backend="rtdb",method="GET",route="/api/v1/agents"}'
        for _ in range(4):
            text = httpx.get(
                f"http://127.0.0.1:{port}/metrics",
                headers={"Authorization": f"Bearer {INFRA_TOKEN}"},
                timeout=5,
            ).text
            assert f"botmox_api_requests_total{refused} {float(REQUESTS)}" in text
            assert f"botmox_api_request_duration_seconds_count{observed} {float(REQUESTS)}" in text
        os.kill(process.pid, signal.SIGTERM)
        assert process.wait(timeout=30) == 0
    assert not directory.exists()
