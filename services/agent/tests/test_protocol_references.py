"""A Proxmox command names its credential by a vault reference: the protocol's rule for it accepts exactly
the vault's names under ``proxmox/`` (the protocol cannot import the vault; this test holds them together)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from botmox_agent.vault import SecretRef
from botmox_agent.vault._errors import InvalidSecretName
from botmox_protocol.kinds import ProxmoxParams

segments = st.from_regex(r"[a-z0-9][a-z0-9._-]{0,70}", fullmatch=True) | st.text(
    alphabet="aZ09._-/ é", min_size=0, max_size=8
)


def vault_accepts(reference: str) -> bool:
    try:
        SecretRef.parse(reference)
    except InvalidSecretName:
        return False
    return True


def protocol_accepts(reference: str) -> bool:
    try:
        ProxmoxParams(credential=reference)
    except ValidationError:
        return False
    return True


@given(st.lists(segments, min_size=1, max_size=9))
def test_the_protocol_takes_the_vaults_proxmox_names(tail: list[str]) -> None:
    reference = "secret://proxmox/" + "/".join(tail)
    assert protocol_accepts(reference) == vault_accepts(reference)


@pytest.mark.parametrize(
    "reference",
    [
        "secret://proxmox/pve1",
        "secret://proxmox/cluster-a/pve1",
        "secret://proxmox/" + "a" * 64,
        "secret://proxmox/" + "/".join(["a" * 26] * 7),
    ],
)
def test_names_at_the_limits_are_taken(reference: str) -> None:
    assert vault_accepts(reference)
    assert protocol_accepts(reference)


@pytest.mark.parametrize(
    "reference",
    [
        "proxmox/pve1",
        "secret://syncthing/api",
        "secret://proxmox",
        "secret://proxmox/",
        "secret://proxmox/Pve1",
    ],
)
def test_other_references_are_refused(reference: str) -> None:
    assert not protocol_accepts(reference)
