"""``logs``: tails and following appended lines until the stack goes away."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from harness.stack.logs import follow, tail


def test_tail_keeps_the_last_lines(tmp_path: Path) -> None:
    log = tmp_path / "api.log"
    log.write_text("".join(f"line {n}\n" for n in range(10)))
    assert tail(log, 3) == "line 7\nline 8\nline 9"
    assert tail(log, 0) == ""
    assert tail(tmp_path / "missing.log", 3) == ""


def test_follow_prints_new_lines_with_their_service_until_told_to_stop(tmp_path: Path) -> None:
    api, rtdb = tmp_path / "api.log", tmp_path / "rtdb.log"
    api.write_text("old\n")
    rtdb.write_text("")
    seen: list[str] = []
    running = threading.Event()
    running.set()

    def write_later() -> None:
        time.sleep(0.2)
        with api.open("a") as handle:
            handle.write("new api line\n")
        with rtdb.open("a") as handle:
            handle.write("new rtdb line\n")
        time.sleep(1.2)
        running.clear()

    writer = threading.Thread(target=write_later)
    writer.start()
    follow([api, rtdb], seen.append, keep_going=running.is_set, limit_s=30)
    writer.join(timeout=10)
    assert seen == ["api | new api line", "rtdb | new rtdb line"]


@pytest.mark.timeout(30)  # fails here, instead of hanging, when the limit is not honoured
def test_follow_ends_at_its_time_limit(tmp_path: Path) -> None:
    log = tmp_path / "api.log"
    log.write_text("")
    seen: list[str] = []
    follow([log], seen.append, keep_going=lambda: True, limit_s=0.3)
    assert seen == []
