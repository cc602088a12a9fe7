"""Secret names and ``secret://`` references: one rule, both spellings."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from botmox_agent.vault import InvalidSecretName, SecretRef, VaultError, validate_name

SEGMENT = st.from_regex(r"[a-z0-9][a-z0-9._-]{0,20}", fullmatch=True)
NAMES = st.lists(SEGMENT, min_size=1, max_size=8).map("/".join)


@given(NAMES)
def test_a_valid_name_round_trips_through_its_reference(name: str) -> None:
    ref = SecretRef.parse(name)
    assert ref.name == name
    assert str(ref) == f"secret://{name}"
    assert SecretRef.parse(str(ref)) == ref


@pytest.mark.parametrize(
    "name",
    [
        "",
        "/",
        "proxmox/",
        "/proxmox",
        "proxmox//pve1",
        "Proxmox/pve1",
        "proxmox/../etc",
        "proxmox/./pve1",
        ".hidden",
        "-flag",
        "proxmox pve1",
        "proxmox/pve1\n",
        "proxmox\\pve1",
        "prøxmox",
        "secret://",
        "secret://secret://a",
        "a/b/c/d/e/f/g/h/i",
        "a" * 65,
        "/".join(["a" * 64] * 4),
    ],
)
def test_an_invalid_name_is_refused_with_the_rule(name: str) -> None:
    with pytest.raises(InvalidSecretName, match="lower-case letters") as caught:
        SecretRef.parse(name)
    assert isinstance(caught.value, VaultError)
    assert isinstance(caught.value, ValueError)


def test_the_longest_names_are_accepted_and_a_long_invalid_name_is_quoted_shortened() -> None:
    assert validate_name("/".join(["a" * 64] * 3)) == "/".join(["a" * 64] * 3)
    with pytest.raises(InvalidSecretName) as caught:
        validate_name("X" * 500)
    assert "X" * 81 not in str(caught.value)
