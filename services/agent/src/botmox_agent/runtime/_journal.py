"""The command journal on SQLite: ``botmox_protocol.CommandJournal``, each write durable when the call
returns (WAL with ``synchronous=FULL``: a commit is fsynced before it returns).

Retention: a finished entry is kept while the server may still re-send its command, and longer: it
goes only once its deadline is ``PRUNE_GRACE`` behind us *and* it is older than ``MAX_AGE`` or beyond
the newest ``MAX_FINISHED`` finished entries. An unfinished entry is never pruned (``recover_interrupted``
finishes it at the next start). The server never re-sends a command after its deadline, so pruning
never lets a command run twice.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Final

from botmox_protocol import CommandError, CommandFrame, JournalEntry, Outcome
from botmox_protocol.sources import utc_now

MAX_FINISHED: Final = 10_000
MAX_AGE: Final = timedelta(days=7)
PRUNE_GRACE: Final = timedelta(hours=1)
# Pruning runs at open and after this many finished commands.
PRUNE_EVERY: Final = 100

_SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS commands (
    command_id TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    deadline TEXT NOT NULL,
    accepted_at TEXT NOT NULL,
    finished_at TEXT,
    ok INTEGER,
    data TEXT,
    error_code TEXT,
    error_message TEXT
);
CREATE INDEX IF NOT EXISTS commands_finished_at ON commands (finished_at);
"""


@dataclass(frozen=True)
class RecentCommand:
    command_id: str
    kind: str
    accepted_at: str
    finished_at: str | None
    # succeeded, failed (with the error's code) or running.
    outcome: str
    error_code: str | None


class SqliteJournal:
    """The journal in one SQLite file (mode 0600, in the 0700 state directory)."""

    def __init__(self, path: Path, *, clock: Callable[[], datetime] = utc_now) -> None:
        self._clock = clock
        path.touch(mode=0o600, exist_ok=True)
        # Autocommit: each statement is its own durable transaction; check_same_thread off because the
        # runtime's loop thread is the only user but `status` may read from another.
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.execute("PRAGMA busy_timeout=5000")
        self._db.executescript(_SCHEMA)
        self._finished_since_prune = 0
        self.prune()

    def close(self) -> None:
        self._db.close()

    def get(self, command_id: str) -> JournalEntry | None:
        row = self._db.execute(
            "SELECT kind, finished_at, ok, data, error_code, error_message FROM commands"
            " WHERE command_id = ?",
            (command_id,),
        ).fetchone()
        if row is None:
            return None
        kind, finished_at, ok, data, code, message = row
        if finished_at is None:
            return JournalEntry(command_id=command_id, kind=kind, outcome=None)
        outcome = (
            Outcome(ok=True, data=json.loads(data))
            if ok
            else Outcome(ok=False, error=CommandError(code=code, message=message))
        )
        return JournalEntry(command_id=command_id, kind=kind, outcome=outcome)

    def accept(self, command: CommandFrame) -> None:
        self._db.execute(
            "INSERT INTO commands (command_id, kind, deadline, accepted_at) VALUES (?, ?, ?, ?)",
            (command.command_id, command.kind, _text(command.deadline), _text(self._clock())),
        )

    def finish(self, command_id: str, outcome: Outcome) -> None:
        error = outcome.error
        cursor = self._db.execute(
            "UPDATE commands SET finished_at = ?, ok = ?, data = ?, error_code = ?, error_message = ?"
            " WHERE command_id = ? AND finished_at IS NULL",
            (
                _text(self._clock()),
                int(outcome.ok),
                json.dumps(outcome.data) if outcome.ok else None,
                None if error is None else error.code,
                None if error is None else error.message,
                command_id,
            ),
        )
        if cursor.rowcount != 1:
            raise KeyError(f"command {command_id} is not accepted and unfinished in the journal")
        self._finished_since_prune += 1
        if self._finished_since_prune >= PRUNE_EVERY:
            self.prune()

    def unfinished(self) -> list[str]:
        rows = self._db.execute(
            "SELECT command_id FROM commands WHERE finished_at IS NULL ORDER BY accepted_at"
        ).fetchall()
        return [command_id for (command_id,) in rows]

    def recent(self, limit: int) -> list[RecentCommand]:
        """The latest `limit` commands, newest first."""
        return _recent(self._db, limit)

    def prune(self) -> int:
        """Drops finished entries past retention (module docstring); how many went."""
        now = self._clock()
        self._finished_since_prune = 0
        cursor = self._db.execute(
            """
            DELETE FROM commands WHERE finished_at IS NOT NULL AND deadline < :settled AND (
                finished_at < :too_old OR command_id NOT IN (
                    SELECT command_id FROM commands WHERE finished_at IS NOT NULL
                    ORDER BY finished_at DESC LIMIT :keep
                )
            )
            """,
            {"settled": _text(now - PRUNE_GRACE), "too_old": _text(now - MAX_AGE), "keep": MAX_FINISHED},
        )
        return cursor.rowcount


def _text(moment: datetime) -> str:
    """UTC, fixed width: text order is time order."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def read_recent(path: Path, limit: int) -> list[RecentCommand]:
    """The latest commands of the journal at `path`, read-only (for `status`, which may run while `run`
    writes, and must create or change nothing); empty when there is no readable journal."""
    try:
        db = sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True)
    except sqlite3.Error:
        return []
    try:
        return _recent(db, limit)
    except sqlite3.Error:
        return []
    finally:
        db.close()


def _recent(db: sqlite3.Connection, limit: int) -> list[RecentCommand]:
    rows = db.execute(
        "SELECT command_id, kind, accepted_at, finished_at, ok, error_code FROM commands"
        " ORDER BY accepted_at DESC, rowid DESC LIMIT ?",
        (limit,),
    ).fetchall()
    return [
        RecentCommand(
            command_id=command_id,
            kind=kind,
            accepted_at=accepted_at,
            finished_at=finished_at,
            outcome="running" if finished_at is None else ("succeeded" if ok else "failed"),
            error_code=code,
        )
        for command_id, kind, accepted_at, finished_at, ok, code in rows
    ]
