"""The agent's state directory: ``identity.json`` (who the agent is; no secret), ``status.json``
(what ``run`` is doing, for ``status``) and the journal's database.

The directory is 0700 and every file 0600; files are replaced atomically (a temporary file, fsync,
rename), so a reader or a crash sees the old content or the new, never half of one.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Final

from pydantic import BaseModel, ConfigDict, JsonValue, ValidationError

DIR_MODE: Final = 0o700
FILE_MODE: Final = 0o600
IDENTITY_FILE: Final = "identity.json"
STATUS_FILE: Final = "status.json"
JOURNAL_FILE: Final = "journal.sqlite3"


class StateError(Exception):
    """The state directory or one of its files cannot be used; the message says which and why."""


class Identity(BaseModel):
    """What pairing made of this agent. The credential is in the vault, never here."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    server_url: str
    agent_id: str
    tenant_id: str
    name: str
    paired_at: str


@dataclass(frozen=True)
class StateDir:
    path: Path

    @property
    def identity_path(self) -> Path:
        return self.path / IDENTITY_FILE

    @property
    def status_path(self) -> Path:
        return self.path / STATUS_FILE

    @property
    def journal_path(self) -> Path:
        return self.path / JOURNAL_FILE

    def ensure(self) -> None:
        """Creates the directory with mode 0700 (parents too); an existing one is tightened to 0700."""
        try:
            self.path.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
            if self.path.stat().st_mode & 0o077:
                self.path.chmod(DIR_MODE)
        except OSError as error:
            raise StateError(f"the state directory {self.path} is not usable: {error.strerror}") from None

    def read_identity(self) -> Identity | None:
        """The identity, or None when the agent is not paired."""
        try:
            text = self.identity_path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        except OSError as error:
            raise StateError(f"{self.identity_path} cannot be read: {error.strerror}") from None
        try:
            return Identity.model_validate_json(text)
        except ValidationError:
            raise StateError(
                f"{self.identity_path} is not an agent identity; pair again with --force"
            ) from None

    def write_identity(self, identity: Identity) -> None:
        self.ensure()
        write_atomically(self.identity_path, identity.model_dump_json(indent=2).encode() + b"\n")

    def write_status(self, status: AgentStatus) -> None:
        self.ensure()
        write_atomically(self.status_path, json.dumps(asdict(status), indent=2).encode() + b"\n")

    def read_status(self) -> dict[str, JsonValue] | None:
        """status.json as written by `run`, or None when `run` never wrote it (or it is unreadable)."""
        try:
            data = json.loads(self.status_path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        return data if isinstance(data, dict) else None


@dataclass(frozen=True)
class AgentStatus:
    """status.json: `run`'s view of its connection, rewritten on connect, disconnect and command."""

    pid: int
    state: str  # starting | connecting | connected | disconnected | stopped
    updated_at: str
    server_url: str
    agent_id: str
    last_connected_at: str | None = None
    last_disconnected_at: str | None = None
    last_close_code: int | None = None
    reconnects: int = 0
    commands_run: int = 0


def write_atomically(path: Path, data: bytes) -> None:
    """Replaces ``path`` with ``data`` (mode 0600): a crash leaves the old file or the new one."""
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(8)}.tmp")
    try:
        fd = os.open(
            temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, FILE_MODE
        )
        with os.fdopen(fd, "wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
        directory = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)
    except OSError as error:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise StateError(f"{path} cannot be written: {error.strerror}") from None
