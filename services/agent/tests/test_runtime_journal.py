"""The SQLite command journal: the CommandJournal contract, durable across reopening, retention, and
the settings it lives under."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from runtime_support import agent_settings

from botmox_agent.runtime import AgentSettings, SqliteJournal
from botmox_agent.runtime._journal import MAX_AGE, PRUNE_GRACE
from botmox_protocol import CommandFrame, Outcome, recover_interrupted

NOW = datetime(2026, 12, 6, 8, 0, tzinfo=UTC)


def command(command_id: str, deadline: datetime = NOW + timedelta(minutes=5)) -> CommandFrame:
    return CommandFrame(
        id=f"f-{command_id}", command_id=command_id, kind="syncthing.status", params={}, deadline=deadline
    )


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> datetime:
        return self.now


def test_accept_finish_get_and_reopen(tmp_path: Path) -> None:
    path = tmp_path / "journal.sqlite3"
    journal = SqliteJournal(path)
    journal.accept(command("a"))
    journal.accept(command("b"))
    journal.finish("a", Outcome.success({"x": [1, "two", None]}))
    journal.close()
    assert path.stat().st_mode & 0o777 == 0o600

    reopened = SqliteJournal(path)
    a = reopened.get("a")
    assert a is not None
    assert a.outcome == Outcome.success({"x": [1, "two", None]})
    b = reopened.get("b")
    assert b is not None
    assert b.outcome is None
    assert b.kind == "syncthing.status"
    assert reopened.get("c") is None
    assert reopened.unfinished() == ["b"]
    assert recover_interrupted(reopened) == ["b"]
    b = reopened.get("b")
    assert b is not None
    assert b.outcome is not None
    assert b.outcome.error is not None
    assert b.outcome.error.code == "INTERRUPTED"
    assert [c.command_id for c in reopened.recent(10)] == ["b", "a"]
    reopened.close()


def test_a_failure_keeps_its_code_and_message(tmp_path: Path) -> None:
    journal = SqliteJournal(tmp_path / "j.sqlite3")
    journal.accept(command("a"))
    journal.finish("a", Outcome.failure("PROXMOX_UNREACHABLE", "pve1: connection refused"))
    entry = journal.get("a")
    assert entry is not None
    assert entry.outcome == Outcome.failure("PROXMOX_UNREACHABLE", "pve1: connection refused")
    assert journal.recent(1)[0].error_code == "PROXMOX_UNREACHABLE"


def test_a_command_is_accepted_once_and_finished_once(tmp_path: Path) -> None:
    journal = SqliteJournal(tmp_path / "j.sqlite3")
    journal.accept(command("a"))
    with pytest.raises(sqlite3.IntegrityError):
        journal.accept(command("a"))
    journal.finish("a", Outcome.success())
    with pytest.raises(KeyError):
        journal.finish("a", Outcome.success())
    with pytest.raises(KeyError):
        journal.finish("never", Outcome.success())


def test_retention_keeps_what_may_be_resent_and_unfinished_entries(tmp_path: Path) -> None:
    clock = Clock()
    journal = SqliteJournal(tmp_path / "j.sqlite3", clock=clock)
    journal.accept(command("old"))
    journal.finish("old", Outcome.success())
    journal.accept(command("long-deadline", deadline=NOW + MAX_AGE * 2))
    journal.finish("long-deadline", Outcome.success())
    journal.accept(command("unfinished"))
    clock.now = NOW + MAX_AGE + PRUNE_GRACE + timedelta(minutes=10)
    journal.accept(command("recent", deadline=clock.now + timedelta(minutes=5)))
    journal.finish("recent", Outcome.success())
    assert journal.prune() == 1
    assert journal.get("old") is None
    # Its deadline is ahead: the server may still re-send it.
    assert journal.get("long-deadline") is not None
    assert journal.get("unfinished") is not None
    assert journal.get("recent") is not None


def test_retention_bounds_the_count_of_settled_entries(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from botmox_agent.runtime import _journal

    monkeypatch.setattr(_journal, "MAX_FINISHED", 3)
    clock = Clock()
    journal = SqliteJournal(tmp_path / "j.sqlite3", clock=clock)
    for n in range(6):
        clock.now = NOW + timedelta(seconds=n)
        journal.accept(command(f"c{n}"))
        journal.finish(f"c{n}", Outcome.success())
    clock.now = NOW + timedelta(days=1)
    assert journal.prune() == 3
    assert [c.command_id for c in journal.recent(10)] == ["c5", "c4", "c3"]


def test_settings_read_the_botmox_agent_variables(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BOTMOX_AGENT_STATE_DIR", str(tmp_path / "s"))
    monkeypatch.setenv("BOTMOX_AGENT_SERVER_URL", "https://api.example.test/")
    monkeypatch.setenv("BOTMOX_AGENT_PAIRING_CODE", "code-123")
    monkeypatch.setenv("BOTMOX_AGENT_HTTP_ADDRESS", "127.0.0.1:9465")
    monkeypatch.setenv("BOTMOX_AGENT_CA_FILE", "")
    monkeypatch.setenv("BOTMOX_AGENT_SYNCTHING_URL", "")
    monkeypatch.setenv("BOTMOX_AGENT_HOME", str(tmp_path / "home"))
    settings = AgentSettings()
    assert settings.state_dir == tmp_path / "s"
    assert settings.server_url == "https://api.example.test"
    assert settings.pairing_code is not None
    assert "code-123" not in repr(settings)
    assert settings.ca_file is None
    assert settings.syncthing_url == ""
    assert settings.vault == tmp_path / "home" / "vault.json"
    assert settings.key_source == "keyring"


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("server_url", "ftp://host"),
        ("server_url", "https://host/?q=1"),
        ("http_address", "9465"),
        ("http_address", "127.0.0.1:99999"),
        ("syncthing_url", "127.0.0.1:8384"),
    ],
)
def test_settings_refuse_bad_values(tmp_path: Path, name: str, value: str) -> None:
    with pytest.raises(ValueError, match=name):
        agent_settings(tmp_path, **{name: value})
