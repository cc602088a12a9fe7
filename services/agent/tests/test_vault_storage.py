"""The vault file on disk: modes, refused permissions, atomic replacement, the writers' lock, location."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from vault_support import CHEAP_COST, PASSPHRASE, SECRET

from botmox_agent.vault import (
    InsecurePermissions,
    KeyringKeySource,
    PassphraseKeySource,
    SecretValue,
    Vault,
    VaultBusy,
    VaultCorrupted,
    default_vault_path,
)
from botmox_agent.vault._storage import writer_lock

AGENT_SRC = Path(__file__).parents[1] / "src"


def run_python(code: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(AGENT_SRC)}
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code), *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )


def test_the_file_is_0600_and_its_new_directory_0700_whatever_the_umask(
    tmp_path: Path, keyring_source: KeyringKeySource
) -> None:
    path = tmp_path / "deep" / "agent" / "vault.json"
    previous = os.umask(0)
    try:
        Vault.create(path, keyring_source).set("a/b", SecretValue(SECRET))
    finally:
        os.umask(previous)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert stat.S_IMODE(path.with_name("vault.json.lock").stat().st_mode) == 0o600
    assert [p.name for p in path.parent.iterdir() if p.name.endswith(".tmp")] == []


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o620, 0o602, 0o660, 0o644])
def test_a_file_open_to_others_is_refused_not_fixed(
    vault_path: Path, keyring_source: KeyringKeySource, mode: int
) -> None:
    Vault.create(vault_path, keyring_source).set("a/b", SecretValue(SECRET))
    vault_path.chmod(mode)
    before = vault_path.read_bytes()
    with pytest.raises(InsecurePermissions, match=f"mode {mode:04o}.*chmod 600"):
        Vault.open(vault_path, keyring_source)
    assert stat.S_IMODE(vault_path.stat().st_mode) == mode
    assert vault_path.read_bytes() == before


def test_a_stricter_mode_is_accepted(vault_path: Path, keyring_source: KeyringKeySource) -> None:
    Vault.create(vault_path, keyring_source).set("a/b", SecretValue(SECRET))
    vault_path.chmod(0o400)
    assert Vault.open(vault_path, keyring_source).get("a/b").reveal() == SECRET


def test_a_symlink_or_a_directory_is_refused(vault_path: Path, keyring_source: KeyringKeySource) -> None:
    Vault.create(vault_path, keyring_source)
    link = vault_path.with_name("link.json")
    link.symlink_to(vault_path)
    with pytest.raises(InsecurePermissions, match="symlink"):
        Vault.open(link, keyring_source)
    directory = vault_path.with_name("dir.json")
    directory.mkdir(mode=0o700)
    with pytest.raises(VaultCorrupted, match="not a regular file"):
        Vault.open(directory, keyring_source)


@pytest.mark.skipif(os.geteuid() != 0, reason="only root can give a file to another user")
def test_a_file_owned_by_another_user_is_refused(vault_path: Path, keyring_source: KeyringKeySource) -> None:
    Vault.create(vault_path, keyring_source)
    os.chown(vault_path, 12345, -1)
    with pytest.raises(InsecurePermissions, match="belongs to uid 12345"):
        Vault.open(vault_path, keyring_source)


def test_a_failed_replace_keeps_the_old_file_and_removes_the_temporary_one(
    vault_path: Path, keyring_source: KeyringKeySource, monkeypatch: pytest.MonkeyPatch
) -> None:
    vault = Vault.create(vault_path, keyring_source)
    vault.set("a/b", SecretValue("old"))
    before = vault_path.read_bytes()

    def crash(*args: object) -> None:
        raise OSError("power cut")

    monkeypatch.setattr("botmox_agent.vault._storage.os.replace", crash)
    with pytest.raises(OSError, match="power cut"):
        vault.set("a/b", SecretValue(SECRET))
    monkeypatch.undo()
    assert vault_path.read_bytes() == before
    assert sorted(p.name for p in vault_path.parent.iterdir()) == ["vault.json", "vault.json.lock"]


def test_a_crash_between_the_temporary_write_and_the_replace_leaves_the_old_vault(vault_path: Path) -> None:
    source = PassphraseKeySource(SecretValue(PASSPHRASE), CHEAP_COST)
    Vault.create(vault_path, source).set("a/b", SecretValue("old"))
    before = vault_path.read_bytes()
    # The process dies at os.replace, after the temporary file was written and fsynced: no cleanup runs.
    crashed = run_python(
        """
        import os, sys
        from pathlib import Path
        from botmox_agent.vault import PassphraseKeySource, SecretValue, Vault
        vault = Vault.open(Path(sys.argv[1]), PassphraseKeySource(SecretValue(sys.argv[2])))
        os.replace = lambda *args: os._exit(9)
        vault.set("a/b", SecretValue(sys.argv[3]))
        """,
        str(vault_path),
        PASSPHRASE,
        SECRET,
    )
    assert crashed.returncode == 9, crashed.stderr
    assert vault_path.read_bytes() == before
    [leftover] = [p for p in vault_path.parent.iterdir() if p.name.endswith(".tmp")]
    assert stat.S_IMODE(leftover.stat().st_mode) == 0o600
    reopened = Vault.open(vault_path, source)
    assert reopened.get("a/b").reveal() == "old"
    reopened.set("a/b", SecretValue("new"))
    assert Vault.open(vault_path, source).get("a/b").reveal() == "new"


def test_concurrent_writers_lose_no_update(vault_path: Path) -> None:
    source = PassphraseKeySource(SecretValue(PASSPHRASE), CHEAP_COST)
    Vault.create(vault_path, source)
    writer = """
        import sys
        from pathlib import Path
        from botmox_agent.vault import PassphraseKeySource, SecretValue, Vault
        vault = Vault.open(Path(sys.argv[1]), PassphraseKeySource(SecretValue(sys.argv[2])))
        for i in range(15):
            vault.set(f"writer-{sys.argv[3]}/secret-{i}", SecretValue(f"value-{sys.argv[3]}-{i}"))
        """
    env = {**os.environ, "PYTHONPATH": str(AGENT_SRC)}
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", textwrap.dedent(writer), str(vault_path), PASSPHRASE, str(n)],
            env=env,
            stderr=subprocess.PIPE,
            text=True,
        )
        for n in range(4)
    ]
    for process in processes:
        _, stderr = process.communicate(timeout=120)
        assert process.returncode == 0, stderr
    vault = Vault.open(vault_path, source)
    assert len(vault.names()) == 60
    assert vault.get("writer-3/secret-14").reveal() == "value-3-14"


def test_a_writer_gives_up_when_the_lock_stays_taken(
    vault_path: Path, keyring_source: KeyringKeySource
) -> None:
    Vault.create(vault_path, keyring_source)
    vault = Vault.open(vault_path, keyring_source, lock_timeout=0.2)
    before = vault_path.read_bytes()
    with writer_lock(vault_path), pytest.raises(VaultBusy, match=r"vault\.json\.lock.*try again"):
        vault.set("a/b", SecretValue(SECRET))
    assert vault_path.read_bytes() == before
    vault.set("a/b", SecretValue(SECRET))  # free again once the holder is done


def test_the_default_location(tmp_path: Path) -> None:
    assert default_vault_path({"BOTMOX_AGENT_HOME": "/srv/agent"}) == Path("/srv/agent/vault.json")
    assert default_vault_path({"XDG_DATA_HOME": "/data"}) == Path("/data/botmox-agent/vault.json")
    assert default_vault_path({}) == Path.home() / ".local/share/botmox-agent/vault.json"
    assert default_vault_path({"BOTMOX_AGENT_HOME": "", "XDG_DATA_HOME": ""}) == default_vault_path({})
