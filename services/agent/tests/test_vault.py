"""The vault: round trips under both key sources, every error, tamper detection, key rotation.

Every refused operation leaves the file's bytes exactly as they were.
"""

from __future__ import annotations

import base64
import json
import logging
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from vault_support import CHEAP_COST, PASSPHRASE, SECRET, InMemoryKeyringDouble

from botmox_agent.vault import (
    DEFAULT_KDF_COST,
    InvalidSecretName,
    KeyringKeySource,
    KeySourceUnavailable,
    PassphraseKeySource,
    SecretNotFound,
    SecretRef,
    SecretValue,
    Vault,
    VaultAlreadyExists,
    VaultChanged,
    VaultCorrupted,
    VaultError,
    VaultNotFound,
    WrongKey,
    key_kind,
)


def make_vault(path: Path, source: PassphraseKeySource | KeyringKeySource) -> Vault:
    vault = Vault.create(path, source)
    vault.set("proxmox/pve1", SecretValue(SECRET))
    vault.set("syncthing/api-key", SecretValue("other-value"))
    return vault


def rewrite(path: Path, change: Callable[[dict[str, Any]], None]) -> None:
    document = json.loads(path.read_bytes())
    change(document)
    path.write_text(json.dumps(document))


def flip_in_base64(text: str, index: int) -> str:
    raw = bytearray(base64.b64decode(text))
    raw[index % len(raw)] ^= 0x01
    return base64.b64encode(bytes(raw)).decode()


def test_round_trip_under_a_passphrase(vault_path: Path, passphrase_source: PassphraseKeySource) -> None:
    make_vault(vault_path, passphrase_source)
    reopened = Vault.open(vault_path, PassphraseKeySource(SecretValue(PASSPHRASE)))
    assert reopened.names() == ["proxmox/pve1", "syncthing/api-key"]
    assert reopened.get("proxmox/pve1").reveal() == SECRET
    assert reopened.get(SecretRef.parse("secret://syncthing/api-key")).reveal() == "other-value"
    assert key_kind(vault_path) == "passphrase"
    header = json.loads(vault_path.read_bytes())["kdf"]
    assert header["name"] == "argon2id"
    assert (header["opslimit"], header["memlimit"]) == (CHEAP_COST.opslimit, CHEAP_COST.memlimit)
    assert SECRET not in vault_path.read_text()


def test_round_trip_under_the_os_keyring(
    vault_path: Path, keyring_source: KeyringKeySource, memory_keyring: InMemoryKeyringDouble
) -> None:
    make_vault(vault_path, keyring_source)
    reopened = Vault.open(vault_path, KeyringKeySource(backend=memory_keyring))
    assert reopened.get("proxmox/pve1").reveal() == SECRET
    assert key_kind(vault_path) == "keyring"
    [(service, username)] = memory_keyring.entries
    assert json.loads(vault_path.read_bytes())["kdf"] == {
        "name": "keyring",
        "service": service,
        "username": username,
    }
    assert service == "botmox-agent"


def test_set_replaces_a_value_and_delete_removes_it(
    vault_path: Path, keyring_source: KeyringKeySource
) -> None:
    vault = make_vault(vault_path, keyring_source)
    vault.set("secret://proxmox/pve1", SecretValue("replaced"))
    assert vault.get("proxmox/pve1").reveal() == "replaced"
    vault.delete("proxmox/pve1")
    assert vault.names() == ["syncthing/api-key"]
    with pytest.raises(SecretNotFound, match="proxmox/pve1"):
        vault.get("proxmox/pve1")
    with pytest.raises(SecretNotFound):
        vault.delete("proxmox/pve1")


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(value=st.text(min_size=1, max_size=300))
def test_any_text_round_trips(tmp_path: Path, value: str) -> None:
    path = tmp_path / "any.json"
    source = PassphraseKeySource(SecretValue(PASSPHRASE), CHEAP_COST)
    vault = Vault.open(path, source) if path.exists() else Vault.create(path, source)
    vault.set("a/value", SecretValue(value))
    assert Vault.open(path, source).get("a/value").reveal() == value


def test_the_default_passphrase_cost_is_moderate() -> None:
    assert (DEFAULT_KDF_COST.opslimit, DEFAULT_KDF_COST.memlimit) == (3, 256 * 1024 * 1024)


def test_a_missing_vault_an_existing_vault_and_bad_names(
    vault_path: Path, keyring_source: KeyringKeySource
) -> None:
    with pytest.raises(VaultNotFound, match="botmox-agent vault set"):
        Vault.open(vault_path, keyring_source)
    vault = Vault.create(vault_path, keyring_source)
    with pytest.raises(VaultAlreadyExists):
        Vault.create(vault_path, keyring_source)
    with pytest.raises(InvalidSecretName):
        vault.set("../escape", SecretValue(SECRET))
    with pytest.raises(InvalidSecretName):
        vault.get("UPPER")
    with pytest.raises(TypeError):
        vault.set("a", SECRET)  # type: ignore[arg-type]


def test_a_wrong_passphrase_is_refused_and_changes_nothing(
    vault_path: Path, passphrase_source: PassphraseKeySource
) -> None:
    make_vault(vault_path, passphrase_source)
    before = vault_path.read_bytes()
    with pytest.raises(WrongKey, match="wrong passphrase") as caught:
        Vault.open(vault_path, PassphraseKeySource(SecretValue("not the passphrase")))
    assert vault_path.read_bytes() == before
    assert PASSPHRASE not in str(caught.value)
    with pytest.raises(KeySourceUnavailable, match="empty"):
        PassphraseKeySource(SecretValue(""))


def test_the_wrong_kind_of_key_source_says_which_one_the_vault_needs(
    vault_path: Path, passphrase_source: PassphraseKeySource, keyring_source: KeyringKeySource
) -> None:
    make_vault(vault_path, passphrase_source)
    with pytest.raises(KeySourceUnavailable, match="sealed with a passphrase"):
        Vault.open(vault_path, keyring_source)
    other = vault_path.with_name("other.json")
    make_vault(other, keyring_source)
    with pytest.raises(WrongKey, match="OS keyring"):
        Vault.open(other, passphrase_source)


def test_a_missing_keyring_entry_or_no_keyring_says_what_to_do(
    vault_path: Path, keyring_source: KeyringKeySource, memory_keyring: InMemoryKeyringDouble
) -> None:
    make_vault(vault_path, keyring_source)
    memory_keyring.entries.clear()
    with pytest.raises(KeySourceUnavailable, match="has no entry"):
        Vault.open(vault_path, keyring_source)
    from keyring.backends import fail

    headless = KeyringKeySource(backend=fail.Keyring())  # type: ignore[no-untyped-call]
    with pytest.raises(KeySourceUnavailable, match=r"no OS keyring is available.*passphrase"):
        Vault.open(vault_path, headless)
    with pytest.raises(KeySourceUnavailable, match="no OS keyring is available"):
        Vault.create(vault_path.with_name("new.json"), headless)
    assert not vault_path.with_name("new.json").exists()


TAMPERINGS: dict[str, Callable[[dict[str, Any]], None]] = {
    "a value's byte": lambda d: d["secrets"].update(
        {"proxmox/pve1": flip_in_base64(d["secrets"]["proxmox/pve1"], 30)}
    ),
    "a value's nonce": lambda d: d["secrets"].update(
        {"proxmox/pve1": flip_in_base64(d["secrets"]["proxmox/pve1"], 3)}
    ),
    "two values swapped": lambda d: d["secrets"].update(
        {
            "proxmox/pve1": d["secrets"]["syncthing/api-key"],
            "syncthing/api-key": d["secrets"]["proxmox/pve1"],
        }
    ),
    "a value copied to another name": lambda d: d["secrets"].update(
        {"syncthing/api-key": d["secrets"]["proxmox/pve1"]}
    ),
    "an entry removed": lambda d: d["secrets"].pop("syncthing/api-key"),
    "an entry added": lambda d: d["secrets"].update({"extra/one": d["secrets"]["proxmox/pve1"]}),
    "the check's byte": lambda d: d.update({"check": flip_in_base64(d["check"], 40)}),
    "the salt": lambda d: d["kdf"].update({"salt": flip_in_base64(d["kdf"]["salt"], 0)}),
    "the KDF's cost": lambda d: d["kdf"].update({"opslimit": d["kdf"]["opslimit"] + 1}),
    "an absurd KDF cost": lambda d: d["kdf"].update({"memlimit": 2**40}),
    "the cipher": lambda d: d.update({"cipher": "none"}),
    "the version": lambda d: d.update({"version": 2}),
    "the format": lambda d: d.update({"format": "something-else"}),
    "an extra field": lambda d: d.update({"plaintext": "x"}),
    "a value not base64": lambda d: d["secrets"].update({"proxmox/pve1": "***"}),
    "an invalid name": lambda d: d["secrets"].update({"../x": d["secrets"]["proxmox/pve1"]}),
    "the kdf replaced": lambda d: d.update({"kdf": {"name": "keyring", "service": "s", "username": "u"}}),
}


@pytest.mark.parametrize("tampering", TAMPERINGS, ids=list(TAMPERINGS))
def test_a_tampered_vault_is_refused_and_never_overwritten(
    vault_path: Path, passphrase_source: PassphraseKeySource, keyring_source: KeyringKeySource, tampering: str
) -> None:
    vault = make_vault(vault_path, passphrase_source)
    rewrite(vault_path, TAMPERINGS[tampering])
    tampered = vault_path.read_bytes()
    with pytest.raises(VaultError) as caught:
        Vault.open(vault_path, passphrase_source)
    assert isinstance(caught.value, VaultCorrupted | WrongKey | KeySourceUnavailable)
    # The handle opened before the tampering refuses every operation, and writes nothing.
    operations: list[Callable[[], object]] = [
        vault.names,
        lambda: vault.get("proxmox/pve1"),
        lambda: vault.set("new/secret", SecretValue(SECRET)),
        lambda: vault.delete("proxmox/pve1"),
        lambda: vault.rotate_key(keyring_source),
    ]
    for operation in operations:
        with pytest.raises(VaultError) as caught:
            operation()
        assert isinstance(caught.value, VaultCorrupted | VaultChanged)
        assert SECRET not in str(caught.value)
        assert vault_path.read_bytes() == tampered


def test_a_file_that_is_not_a_vault_is_refused(vault_path: Path, keyring_source: KeyringKeySource) -> None:
    vault_path.parent.mkdir(mode=0o700)
    for content in [b"", b"not json", b"[]", b'{"format": "botmox-agent-vault"}', b"\xff\xfe"]:
        vault_path.write_bytes(content)
        vault_path.chmod(0o600)
        with pytest.raises(VaultCorrupted, match=r"restore it from a backup|version"):
            Vault.open(vault_path, keyring_source)
        assert vault_path.read_bytes() == content


def test_any_flipped_byte_is_refused_or_changes_nothing_the_vault_holds(
    vault_path: Path, keyring_source: KeyringKeySource
) -> None:
    make_vault(vault_path, keyring_source)
    original = vault_path.read_bytes()
    expected = {"proxmox/pve1": SECRET, "syncthing/api-key": "other-value"}

    @settings(max_examples=300, deadline=None)
    @given(position=st.integers(0, len(original) - 1), mask=st.integers(1, 255))
    def flipped(position: int, mask: int) -> None:
        data = bytearray(original)
        data[position] ^= mask
        vault_path.write_bytes(bytes(data))
        try:
            vault = Vault.open(vault_path, keyring_source)
        except VaultError as error:
            refusal = str(error)
        else:
            refusal = ""
        if refusal:
            assert SECRET not in refusal
            assert vault_path.read_bytes() == bytes(data)
            return
        # Only a change JSON ignores (whitespace) may open, and then with exactly the same content.
        assert {name: vault.get(name).reveal() for name in vault.names()} == expected

    flipped()


def test_rotate_key_re_seals_under_a_new_passphrase(
    vault_path: Path, passphrase_source: PassphraseKeySource
) -> None:
    vault = make_vault(vault_path, passphrase_source)
    old_salt = json.loads(vault_path.read_bytes())["kdf"]["salt"]
    new_source = PassphraseKeySource(SecretValue("a new passphrase"), CHEAP_COST)
    vault.rotate_key(new_source)
    assert json.loads(vault_path.read_bytes())["kdf"]["salt"] != old_salt
    with pytest.raises(WrongKey):
        Vault.open(vault_path, passphrase_source)
    reopened = Vault.open(vault_path, new_source)
    assert reopened.get("proxmox/pve1").reveal() == SECRET
    vault.set("after/rotation", SecretValue("x"))  # the rotating handle keeps working, under the new key
    assert Vault.open(vault_path, new_source).get("after/rotation").reveal() == "x"


def test_rotate_key_switches_between_keyring_and_passphrase(
    vault_path: Path,
    passphrase_source: PassphraseKeySource,
    keyring_source: KeyringKeySource,
    memory_keyring: InMemoryKeyringDouble,
) -> None:
    vault = make_vault(vault_path, keyring_source)
    [old_entry] = memory_keyring.entries
    vault.rotate_key(KeyringKeySource(backend=memory_keyring))
    [new_entry] = memory_keyring.entries  # the old entry is forgotten once the new file is in place
    assert new_entry != old_entry
    vault.rotate_key(passphrase_source)
    assert memory_keyring.entries == {}
    assert key_kind(vault_path) == "passphrase"
    assert Vault.open(vault_path, passphrase_source).get("proxmox/pve1").reveal() == SECRET
    vault.rotate_key(keyring_source)
    assert key_kind(vault_path) == "keyring"
    assert Vault.open(vault_path, keyring_source).get("syncthing/api-key").reveal() == "other-value"


def test_a_failed_rotation_leaves_the_vault_and_the_keyring_as_they_were(
    vault_path: Path,
    keyring_source: KeyringKeySource,
    memory_keyring: InMemoryKeyringDouble,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    vault = make_vault(vault_path, keyring_source)
    before, entries = vault_path.read_bytes(), dict(memory_keyring.entries)

    def crash(*args: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr("botmox_agent.vault._storage.os.replace", crash)
    with pytest.raises(OSError, match="disk full"):
        vault.rotate_key(KeyringKeySource(backend=memory_keyring))
    monkeypatch.undo()
    assert vault_path.read_bytes() == before
    assert memory_keyring.entries == entries
    assert Vault.open(vault_path, keyring_source).get("proxmox/pve1").reveal() == SECRET


def test_a_handle_refuses_to_write_after_another_process_re_keyed_the_vault(
    vault_path: Path, passphrase_source: PassphraseKeySource
) -> None:
    first = make_vault(vault_path, passphrase_source)
    Vault.open(vault_path, passphrase_source).rotate_key(passphrase_source)
    rotated = vault_path.read_bytes()
    with pytest.raises(VaultChanged, match="open it again"):
        first.set("x/y", SecretValue(SECRET))
    assert vault_path.read_bytes() == rotated


def test_no_value_or_passphrase_in_logs_reprs_or_errors(
    vault_path: Path,
    passphrase_source: PassphraseKeySource,
    caplog: pytest.LogCaptureFixture,
) -> None:
    texts: list[str] = []
    with caplog.at_level(logging.DEBUG):
        vault = make_vault(vault_path, passphrase_source)
        texts += [repr(vault), repr(passphrase_source), repr(vault.get("proxmox/pve1"))]
        failures: list[Callable[[], object]] = [
            lambda: Vault.open(vault_path, PassphraseKeySource(SecretValue(SECRET))),
            lambda: vault.get("missing/one"),
            lambda: vault.set(SECRET, SecretValue(SECRET)),
            lambda: Vault.create(vault_path, passphrase_source),
        ]
        rewrite(vault_path, TAMPERINGS["a value's byte"])
        failures.append(lambda: vault.get("proxmox/pve1"))
        for failure in failures:
            with pytest.raises(VaultError) as caught:
                failure()
            texts.append("".join(traceback.format_exception(caught.value)))
    assert "secret set" in caplog.text
    for text in [*texts, caplog.text]:
        assert PASSPHRASE not in text
    # The one exception: a wrong name quoted back is the caller's own argument, never a stored value.
    assert all(SECRET not in text for text in [*texts[:4], texts[4], *texts[6:], caplog.text])
