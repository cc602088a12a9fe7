"""At-most-once execution on the agent: the journal of command ids and outcomes, as an interface.

The agent journals a command durably *before* running it and its outcome *before* sending the result.
A command id seen again (the server re-sends whatever has no stored result after a reconnect) is
answered from the journal and never runs twice. The storage is the agent's (later); this module holds
the contract it implements and the rule applied at start-up.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol

from pydantic import JsonValue

from botmox_protocol.frames import CommandError, CommandFrame
from botmox_protocol.limits import MAX_MESSAGE_CHARS

# Result codes the protocol itself gives a command (executors add their own).
INTERRUPTED = "INTERRUPTED"
DEADLINE_EXCEEDED = "DEADLINE_EXCEEDED"
UNSUPPORTED_KIND = "UNSUPPORTED_KIND"
RESULT_TOO_LARGE = "RESULT_TOO_LARGE"
INVALID_RESULT = "INVALID_RESULT"


@dataclass(frozen=True)
class Outcome:
    """What a command came to: `ok` with `data`, or an `error`; a result frame without its envelope."""

    ok: bool
    data: JsonValue = None
    error: CommandError | None = None

    @classmethod
    def success(cls, data: JsonValue = None) -> Outcome:
        return cls(ok=True, data=data)

    @classmethod
    def failure(cls, code: str, message: str) -> Outcome:
        # An executor's message may run long (a stack of causes); the frame holds this much of it.
        return cls(ok=False, error=CommandError(code=code, message=message[:MAX_MESSAGE_CHARS]))


@dataclass(frozen=True)
class JournalEntry:
    command_id: str
    kind: str
    # None while the command is accepted and not finished.
    outcome: Outcome | None


class CommandJournal(Protocol):
    """Durable storage of command ids and outcomes; every write is on disk when the call returns."""

    def get(self, command_id: str) -> JournalEntry | None:
        """The entry of `command_id`, or None if this agent never accepted it."""
        ...

    def accept(self, command: CommandFrame) -> None:
        """Record that `command` will run (an entry without outcome); called before it runs."""
        ...

    def finish(self, command_id: str, outcome: Outcome) -> None:
        """Record the outcome of an accepted command; called before its result is sent."""
        ...

    def unfinished(self) -> Iterable[str]:
        """Ids of accepted commands without an outcome."""
        ...


def recover_interrupted(journal: CommandJournal) -> list[str]:
    """At agent start-up, before connecting: a command accepted and unfinished when the previous process
    stopped may or may not have taken effect; it is finished as INTERRUPTED rather than run again."""
    interrupted = list(journal.unfinished())
    for command_id in interrupted:
        journal.finish(
            command_id,
            Outcome.failure(INTERRUPTED, "the agent stopped while the command ran; its effect is unknown"),
        )
    return interrupted
