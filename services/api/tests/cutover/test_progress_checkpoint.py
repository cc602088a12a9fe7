"""Progress on stderr (a bar in a terminal, lines otherwise) and the checkpoint file."""

from __future__ import annotations

import dataclasses
import io
from pathlib import Path

from botmox_api.cutover import checkpoint
from botmox_api.cutover.progress import BarProgress, LineProgress, progress_for


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_terminal_gets_the_bar_and_a_pipe_gets_lines() -> None:
    terminal = Terminal()
    bar = progress_for("backfill rtdb -> supabase", terminal)
    assert isinstance(bar, BarProgress)
    bar.start(10, resumed_at=2)
    bar.update(6, {"written": 4, "skipped": 0})
    bar.stop()

    pipe = io.StringIO()
    lines = progress_for("verify", pipe)
    assert isinstance(lines, LineProgress)
    lines.start(10)
    lines.update(5, {"different": 1})
    assert pipe.getvalue().startswith("verify: 5/10 tenants, 1 different, ")
    assert pipe.getvalue().endswith(" tenants/s\n")


def test_a_checkpoint_round_trips_and_a_damaged_one_is_ignored(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "cp.json"
    saved = checkpoint.Checkpoint(
        key=checkpoint.run_key("rtdb", "supabase", force=False, tenants=("b", "a")),
        last_tenant="t00499",
        counts={"create": 500},
        skipped=[{"tenant": "t00007", "decision": "source_invalid", "reason": "x"}],
    )
    checkpoint.save(path, saved)
    assert checkpoint.load(path) == saved
    assert saved.saved_at > 0
    assert checkpoint.age(saved).endswith(" s")
    assert checkpoint.age(dataclasses.replace(saved, saved_at=saved.saved_at - 3 * 86_400)) == "3.0 days"
    assert not path.with_name("cp.json.tmp").exists()
    path.write_text("{not json", encoding="utf-8")
    assert checkpoint.load(path) is None
    checkpoint.remove(path)
    assert checkpoint.load(path) is None


def test_the_run_key_tells_directions_force_and_selections_apart() -> None:
    keys = {
        checkpoint.run_key("rtdb", "supabase", force=False, tenants=()),
        checkpoint.run_key("supabase", "rtdb", force=False, tenants=()),
        checkpoint.run_key("rtdb", "supabase", force=True, tenants=()),
        checkpoint.run_key("rtdb", "supabase", force=False, tenants=("acme",)),
    }
    assert len(keys) == 4
    assert checkpoint.run_key("rtdb", "supabase", force=False, tenants=("b", "a")) == checkpoint.run_key(
        "rtdb", "supabase", force=False, tenants=("a", "b", "a")
    )
    assert checkpoint.default_path("rtdb", "supabase") == Path(".cutover/backfill-rtdb-to-supabase.json")
