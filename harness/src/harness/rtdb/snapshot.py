"""Durability: no response acknowledges a write before the snapshot file holding it is on disk.

Writes are grouped: while one flush is on its way to disk, later writes accumulate and the next
flush (one temp file, fsync, atomic rename, directory fsync) acknowledges all of them at once.
Without a snapshot file every write is "durable" at once (the data lives only in memory).
"""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path
from typing import Protocol

from harness.rtdb.tree import Database
from harness.rtdb.values import Node

SNAPSHOT_FORMAT = "botmox-rtdb-snapshot"
SNAPSHOT_VERSION = 1


class SnapshotError(Exception):
    """The snapshot file cannot be read, or a flush failed (the write is not acknowledged)."""


class Durability(Protocol):
    def note_write(self) -> int:
        """Record that a write was applied in memory; returns its generation."""

    async def wait_durable(self, generation: int) -> None:
        """Return once every write up to ``generation`` is durable; SnapshotError if it failed."""

    @property
    def generation(self) -> int: ...

    async def start(self) -> None: ...

    async def stop(self) -> None: ...


class InMemoryOnly:
    def __init__(self) -> None:
        self._generation = 0

    @property
    def generation(self) -> int:
        return self._generation

    def note_write(self) -> int:
        self._generation += 1
        return self._generation

    async def wait_durable(self, generation: int) -> None:
        return None

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        return None


def load_snapshot(path: Path, database: Database) -> None:
    """Fill ``database`` from ``path`` when it exists; a damaged file is an error, never ignored."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return
    except OSError as error:
        raise SnapshotError(f"cannot read snapshot {path}: {error}") from error
    try:
        document = json.loads(raw)
    except ValueError as error:
        raise SnapshotError(f"snapshot {path} is not valid JSON: {error}") from error
    if (
        not isinstance(document, dict)
        or document.get("format") != SNAPSHOT_FORMAT
        or document.get("version") != SNAPSHOT_VERSION
        or not isinstance(document.get("namespaces"), dict)
    ):
        raise SnapshotError(f"snapshot {path} is not a {SNAPSHOT_FORMAT} v{SNAPSHOT_VERSION} file")
    namespaces: dict[str, Node] = document["namespaces"]
    database.load(namespaces)


class SnapshotFile:
    def __init__(self, path: Path, database: Database) -> None:
        self._path = path
        self._database = database
        self._generation = 0
        self._durable = 0
        self._dirty = asyncio.Event()
        self._closing = False
        self._round: asyncio.Future[bool] | None = None
        self._flusher: asyncio.Task[None] | None = None

    @property
    def generation(self) -> int:
        return self._generation

    def note_write(self) -> int:
        self._generation += 1
        self._dirty.set()
        return self._generation

    async def wait_durable(self, generation: int) -> None:
        while self._durable < generation:
            if self._flusher is None or self._flusher.done() or self._round is None:
                raise SnapshotError("the snapshot writer is not running")
            if not await asyncio.shield(self._round):
                raise SnapshotError(f"could not write snapshot {self._path}")

    async def start(self) -> None:
        # Write once at start: an unwritable location fails the start, not the first write.
        try:
            self._path.parent.mkdir(parents=True, exist_ok=True)
            await asyncio.to_thread(_replace_atomically, self._path, self._serialize())
        except OSError as error:
            raise SnapshotError(f"cannot write snapshot {self._path}: {error}") from error
        self._round = asyncio.get_running_loop().create_future()
        self._flusher = asyncio.create_task(self._flush_forever(), name="rtdb-snapshot-flusher")

    async def stop(self) -> None:
        self._closing = True
        self._dirty.set()
        if self._flusher is not None:
            await self._flusher

    def _serialize(self) -> bytes:
        # Runs on the loop, between writes, so the file always holds one consistent state.
        document = {
            "format": SNAPSHOT_FORMAT,
            "version": SNAPSHOT_VERSION,
            "namespaces": self._database.dump(),
        }
        return json.dumps(document, ensure_ascii=False, separators=(",", ":")).encode("utf-8")

    async def _flush_forever(self) -> None:
        while True:
            await self._dirty.wait()
            self._dirty.clear()
            if self._durable == self._generation:
                if self._closing:
                    return
                continue
            generation = self._generation
            payload = self._serialize()
            try:
                await asyncio.to_thread(_replace_atomically, self._path, payload)
                succeeded = True
                self._durable = generation
            except OSError:
                succeeded = False
            finished, self._round = self._round, asyncio.get_running_loop().create_future()
            assert finished is not None
            finished.set_result(succeeded)
            if not succeeded:
                # Back off a little so a full disk does not turn into a busy loop.
                await asyncio.sleep(0.05)
            if self._closing:
                if not succeeded:
                    return
                self._dirty.set()


def _replace_atomically(path: Path, payload: bytes) -> None:
    temporary = path.with_name(path.name + ".tmp")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        view = memoryview(payload)
        while view:
            written = os.write(descriptor, view)
            view = view[written:]
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
    os.replace(temporary, path)
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)
