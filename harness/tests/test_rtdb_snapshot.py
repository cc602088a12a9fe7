"""Group-committed snapshots: a write is acknowledged only once the file on disk holds it."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from harness.rtdb import snapshot as snapshot_module
from harness.rtdb.snapshot import SnapshotError, SnapshotFile, load_snapshot
from harness.rtdb.tree import Database, Write


def _write(database: Database, snapshot: SnapshotFile, key: str, value: int) -> int:
    database.apply(Write("ns", (key,), (((), value),), is_patch=False))
    return snapshot.note_write()


def _on_disk(path: Path) -> Database:
    loaded = Database()
    load_snapshot(path, loaded)
    return loaded


async def test_wait_durable_returns_only_once_the_file_holds_the_write(tmp_path: Path) -> None:
    path = tmp_path / "snapshot.json"
    database = Database()
    snapshot = SnapshotFile(path, database)
    await snapshot.start()
    try:
        generation = _write(database, snapshot, "a", 1)
        await snapshot.wait_durable(generation)
        assert _on_disk(path).get("ns", ("a",)) == 1
    finally:
        await snapshot.stop()


async def test_concurrent_writes_share_flushes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    flushes: list[int] = []
    original = snapshot_module._replace_atomically

    def counting(path: Path, payload: bytes) -> None:
        flushes.append(len(payload))
        original(path, payload)

    monkeypatch.setattr(snapshot_module, "_replace_atomically", counting)
    path = tmp_path / "snapshot.json"
    database = Database()
    snapshot = SnapshotFile(path, database)
    await snapshot.start()
    try:

        async def write(index: int) -> None:
            await snapshot.wait_durable(_write(database, snapshot, f"k{index}", index))

        await asyncio.gather(*(write(index) for index in range(100)))
    finally:
        await snapshot.stop()
    assert 1 <= len(flushes) < 100
    on_disk = _on_disk(path)
    assert all(on_disk.get("ns", (f"k{index}",)) == index for index in range(100))


async def test_a_failed_flush_is_not_acknowledged(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def failing(path: Path, payload: bytes) -> None:
        raise OSError("disk full")

    database = Database()
    snapshot = SnapshotFile(tmp_path / "snapshot.json", database)
    await snapshot.start()
    monkeypatch.setattr(snapshot_module, "_replace_atomically", failing)
    try:
        with pytest.raises(SnapshotError):
            await snapshot.wait_durable(_write(database, snapshot, "a", 1))
    finally:
        await snapshot.stop()


def test_a_snapshot_of_another_format_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "snapshot.json"
    path.write_text('{"namespaces": {}}')
    with pytest.raises(SnapshotError):
        load_snapshot(path, Database())


def test_a_missing_snapshot_starts_empty(tmp_path: Path) -> None:
    database = Database()
    load_snapshot(tmp_path / "absent.json", database)
    assert database.dump() == {}


async def test_an_unwritable_location_fails_the_start(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    snapshot = SnapshotFile(tmp_path / "file" / "snapshot.json", Database())
    with pytest.raises(SnapshotError, match="cannot write"):
        await snapshot.start()
