"""``botmox-agent vault``: end to end through the command line, its exit codes, and no value in any output."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import keyring
import pytest
from keyring.backends import fail
from typer.testing import CliRunner, Result
from vault_support import PASSPHRASE, SECRET, InMemoryKeyringDouble

from botmox_agent.__main__ import app
from botmox_agent.vault import _cli

AGENT_SRC = Path(__file__).parents[1] / "src"


@pytest.fixture
def run(vault_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[_Runner]:
    """Runs ``botmox-agent vault --vault PATH ...``; at the end, no output but --reveal's held the secret."""
    monkeypatch.delenv("BOTMOX_AGENT_VAULT_PASSPHRASE", raising=False)
    monkeypatch.delenv("BOTMOX_AGENT_VAULT_NEW_PASSPHRASE", raising=False)
    monkeypatch.setattr(_cli, "can_prompt", lambda: False)
    runner = _Runner(vault_path)
    yield runner
    assert runner.outputs
    assert all(SECRET not in text for text in runner.outputs)


class _Runner:
    def __init__(self, vault_path: Path) -> None:
        self.vault_path = vault_path
        self.outputs: list[str] = []

    def __call__(self, *args: str, input: str | None = None, env: dict[str, str] | None = None) -> Result:
        command = ["vault", "--vault", str(self.vault_path), *args]
        result = CliRunner().invoke(app, command, input=input, env=env)
        if result.exception is not None and not isinstance(result.exception, SystemExit):
            raise result.exception
        self.outputs += [result.stderr, "" if "--reveal" in args else result.stdout]
        return result


PASS_ENV = {"BOTMOX_AGENT_VAULT_PASSPHRASE": PASSPHRASE}


def test_set_get_list_delete_under_the_os_keyring(
    run: _Runner, memory_keyring: InMemoryKeyringDouble, vault_path: Path
) -> None:
    created = run("set", "proxmox/pve1", input=SECRET + "\n")
    assert created.exit_code == 0, created.stderr
    assert "created the vault" in created.stderr
    assert "stored secret://proxmox/pve1" in created.stderr
    assert run("set", "secret://syncthing/api-key", input="other").exit_code == 0
    listed = run("list")
    assert listed.stdout == "secret://proxmox/pve1\nsecret://syncthing/api-key\n"
    hidden = run("get", "proxmox/pve1")
    assert (hidden.exit_code, hidden.stdout) == (0, "")
    assert "--reveal" in hidden.stderr
    revealed = run("get", "secret://proxmox/pve1", "--reveal")
    assert revealed.stdout == SECRET  # exactly the value: the trailing newline of the input is dropped
    assert revealed.stderr == ""
    assert run("delete", "proxmox/pve1").exit_code == 0
    assert run("list").stdout == "secret://syncthing/api-key\n"
    assert len(memory_keyring.entries) == 1
    assert SECRET not in vault_path.read_text()


def test_a_passphrase_vault_from_the_environment_and_from_the_prompt(
    run: _Runner, monkeypatch: pytest.MonkeyPatch
) -> None:
    args = ["set", "proxmox/pve1", "--key-source", "passphrase", "--kdf-cost", "interactive"]
    assert run(*args, input=SECRET, env=PASS_ENV).exit_code == 0
    assert run("get", "proxmox/pve1", "--reveal", env=PASS_ENV).stdout == SECRET
    no_passphrase = run("list")
    assert no_passphrase.exit_code == 6
    assert "BOTMOX_AGENT_VAULT_PASSPHRASE" in no_passphrase.stderr
    monkeypatch.setattr(_cli, "can_prompt", lambda: True)
    prompted = run("list", input=PASSPHRASE + "\n")
    assert prompted.exit_code == 0
    # The prompt went to stderr; CliRunner's stand-in for getpass echoes the newline.
    assert prompted.stdout.strip() == "secret://proxmox/pve1"
    assert "Vault passphrase" in prompted.stderr
    assert PASSPHRASE not in prompted.stdout + prompted.stderr


def test_a_value_typed_at_a_hidden_prompt(
    run: _Runner, memory_keyring: InMemoryKeyringDouble, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_cli, "stdin_is_terminal", lambda: True)
    mistyped = run("set", "proxmox/pve1", input=f"{SECRET}\nsomething else\n{SECRET}\n{SECRET}\n")
    assert mistyped.exit_code == 0, mistyped.stderr
    assert "do not match" in mistyped.stderr  # asked again: the confirmation differed
    assert mistyped.stdout.strip() == ""  # CliRunner's stand-in for getpass echoes the newlines
    assert run("get", "proxmox/pve1", "--reveal").stdout == SECRET


def test_the_value_never_comes_from_argv(run: _Runner, memory_keyring: InMemoryKeyringDouble) -> None:
    result = run("set", "proxmox/pve1", SECRET, input="x")
    assert result.exit_code == 2
    assert "never taken from the command line" in result.stderr
    assert run("set", "proxmox/pve1", input="\n").exit_code == 2  # empty: nothing stored
    assert not run.vault_path.exists()


def test_no_os_keyring_says_how_to_use_a_passphrase(run: _Runner, vault_path: Path) -> None:
    previous = keyring.get_keyring()
    keyring.set_keyring(fail.Keyring())  # type: ignore[no-untyped-call]
    try:
        result = run("set", "proxmox/pve1", input=SECRET)
    finally:
        keyring.set_keyring(previous)
    assert result.exit_code == 6
    assert "no OS keyring is available" in result.stderr
    assert "--key-source passphrase" in result.stderr
    assert "BOTMOX_AGENT_VAULT_PASSPHRASE" in result.stderr
    assert not vault_path.exists()


def test_exit_codes_of_the_errors(
    run: _Runner, memory_keyring: InMemoryKeyringDouble, vault_path: Path
) -> None:
    assert run("list").exit_code == 3
    assert run("set", "proxmox/pve1", input=SECRET).exit_code == 0
    assert run("get", "missing/one").exit_code == 4
    assert run("delete", "missing/one").exit_code == 4
    assert run("get", "Bad Name").exit_code == 2
    memory_keyring.entries.clear()
    assert run("list").exit_code == 6
    document = json.loads(vault_path.read_text())
    document["secrets"]["proxmox/pve1"] = document["secrets"]["proxmox/pve1"][:-4] + "AAA="
    vault_path.write_text(json.dumps(document))
    vault_path.chmod(0o644)
    assert run("list").exit_code == 8
    vault_path.chmod(0o600)
    before = vault_path.read_bytes()
    assert run("set", "proxmox/pve1", input=SECRET).exit_code == 6  # the keyring entry is gone
    assert vault_path.read_bytes() == before


def test_a_corrupted_vault_exits_7_and_stays_as_it_was(run: _Runner, vault_path: Path) -> None:
    assert (
        run(
            "set",
            "a/b",
            "--key-source",
            "passphrase",
            "--kdf-cost",
            "interactive",
            input=SECRET,
            env=PASS_ENV,
        ).exit_code
        == 0
    )
    document = json.loads(vault_path.read_text())
    document["secrets"]["a/c"] = document["secrets"]["a/b"]
    vault_path.write_text(json.dumps(document))
    before = vault_path.read_bytes()
    for args in [["list"], ["set", "a/d"], ["delete", "a/b"], ["rotate-key"]]:
        result = run(*args, input=SECRET, env={**PASS_ENV, "BOTMOX_AGENT_VAULT_NEW_PASSPHRASE": "n"})
        assert result.exit_code == 7, args
        assert "corrupted" in result.stderr
        assert vault_path.read_bytes() == before
    assert run("list", env={"BOTMOX_AGENT_VAULT_PASSPHRASE": "wrong"}).exit_code == 5


def test_rotate_key_from_passphrase_to_keyring_and_back(
    run: _Runner, memory_keyring: InMemoryKeyringDouble, vault_path: Path
) -> None:
    args = ["set", "proxmox/pve1", "--key-source", "passphrase", "--kdf-cost", "interactive"]
    assert run(*args, input=SECRET, env=PASS_ENV).exit_code == 0
    new = {**PASS_ENV, "BOTMOX_AGENT_VAULT_NEW_PASSPHRASE": "the new one"}
    rotated = run("rotate-key", "--kdf-cost", "interactive", env=new)
    assert rotated.exit_code == 0, rotated.stderr
    assert run("list", env=PASS_ENV).exit_code == 5
    assert (
        run("rotate-key", "--to", "keyring", env={"BOTMOX_AGENT_VAULT_PASSPHRASE": "the new one"}).exit_code
        == 0
    )
    assert json.loads(vault_path.read_text())["kdf"]["name"] == "keyring"
    assert run("get", "proxmox/pve1", "--reveal").stdout == SECRET
    missing_new = run("rotate-key", "--to", "passphrase")
    assert missing_new.exit_code == 6
    assert "BOTMOX_AGENT_VAULT_NEW_PASSPHRASE" in missing_new.stderr


def test_no_value_in_logs_of_a_whole_session(
    run: _Runner, memory_keyring: InMemoryKeyringDouble, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.DEBUG):
        run("set", "proxmox/pve1", input=SECRET)
        run("get", "proxmox/pve1")
        run("list")
        run("rotate-key")
        run("delete", "proxmox/pve1")
    assert "secret set" in caplog.text
    assert SECRET not in caplog.text


def run_installed(*args: str, home: Path, stdin: str = "", **env: str) -> subprocess.CompletedProcess[str]:
    environment = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": str(home),
        "PYTHONPATH": str(AGENT_SRC),
        # Never the developer's real keyring: the headless backend, as on a server.
        "PYTHON_KEYRING_BACKEND": "keyring.backends.fail.Keyring",
        **env,
    }
    return subprocess.run(
        [sys.executable, "-m", "botmox_agent", *args],
        input=stdin,
        capture_output=True,
        text=True,
        env=environment,
        timeout=120,
        check=False,
    )


def test_the_command_in_a_real_process_on_a_headless_machine(tmp_path: Path) -> None:
    no_keyring = run_installed("vault", "set", "proxmox/pve1", home=tmp_path, stdin=SECRET)
    assert no_keyring.returncode == 6
    assert "no OS keyring is available" in no_keyring.stderr
    env = {"BOTMOX_AGENT_VAULT_PASSPHRASE": PASSPHRASE}
    args = ["vault", "set", "proxmox/pve1", "--key-source", "passphrase", "--kdf-cost", "interactive"]
    stored = run_installed(*args, home=tmp_path, stdin=SECRET, **env)
    assert stored.returncode == 0, stored.stderr
    path = tmp_path / ".local/share/botmox-agent/vault.json"
    assert path.exists()
    listed = run_installed("vault", "list", home=tmp_path, **env)
    assert listed.stdout == "secret://proxmox/pve1\n"
    revealed = run_installed("vault", "get", "proxmox/pve1", "--reveal", home=tmp_path, **env)
    assert revealed.stdout == SECRET
    for result in [no_keyring, stored, listed]:
        assert SECRET not in result.stdout + result.stderr
    usage = run_installed("--help", home=tmp_path)
    assert usage.returncode == 0
    assert "vault" in usage.stdout


def test_every_vault_error_has_its_documented_exit_code() -> None:
    from botmox_agent.vault import VaultError

    def subclasses(kind: type[VaultError]) -> list[type[VaultError]]:
        return [sub for direct in kind.__subclasses__() for sub in (direct, *subclasses(direct))]

    codes = {kind.__name__: _cli._exit_code(kind("x")) for kind in subclasses(VaultError)}
    assert codes == {
        "VaultNotFound": 3,
        "VaultAlreadyExists": 9,
        "VaultCorrupted": 7,
        "WrongKey": 5,
        "KeySourceUnavailable": 6,
        "InsecurePermissions": 8,
        "VaultBusy": 9,
        "VaultChanged": 9,
        "SecretNotFound": 4,
        "InvalidSecretName": 2,
    }
    assert _cli._exit_code(VaultError("x")) == 1
