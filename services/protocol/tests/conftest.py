"""Fixtures of the protocol tests: an in-memory command journal and fixed sources of ids and time."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta

import pytest

from botmox_protocol import CommandFrame, JournalEntry, Outcome

T0 = datetime(2026, 12, 6, 8, 0, tzinfo=UTC)


class MemoryJournal:
    """The `CommandJournal` contract over a dict, with a log of writes to check their order."""

    def __init__(self) -> None:
        self.entries: dict[str, JournalEntry] = {}
        self.writes: list[tuple[str, str]] = []

    def get(self, command_id: str) -> JournalEntry | None:
        return self.entries.get(command_id)

    def accept(self, command: CommandFrame) -> None:
        assert command.command_id not in self.entries, "a command is accepted once"
        self.entries[command.command_id] = JournalEntry(command.command_id, command.kind, None)
        self.writes.append(("accept", command.command_id))

    def finish(self, command_id: str, outcome: Outcome) -> None:
        entry = self.entries[command_id]
        assert entry.outcome is None, "a command is finished once"
        self.entries[command_id] = JournalEntry(command_id, entry.kind, outcome)
        self.writes.append(("finish", command_id))

    def unfinished(self) -> Iterator[str]:
        return (cid for cid, entry in self.entries.items() if entry.outcome is None)


class Clock:
    def __init__(self, now: datetime = T0) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@pytest.fixture
def journal() -> MemoryJournal:
    return MemoryJournal()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def new_id() -> Callable[[], str]:
    counter = itertools.count(1)
    return lambda: f"f{next(counter)}"
