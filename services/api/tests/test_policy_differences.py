"""``model.policy_differences``: the one rule by which the cutover tool and shadow reads compare a
tenant's policy in two backends."""

from __future__ import annotations

import dataclasses

import pytest

from botmox_api.model import POLICY_FIELDS, STORED_ON_ONE_SIDE, StoragePolicy, policy_differences

STORED = StoragePolicy(operational="local", sync_enabled=True, updated_at=1_700, updated_by="u1", version=3)


def test_equal_policies_and_nothing_on_either_side_have_no_difference() -> None:
    assert policy_differences(STORED, dataclasses.replace(STORED)) == ()
    assert policy_differences(None, None) == ()


@pytest.mark.parametrize("missing_left", [True, False])
def test_a_policy_on_one_side_only_is_named_as_such(missing_left: bool) -> None:
    pair = (None, STORED) if missing_left else (STORED, None)
    assert policy_differences(*pair) == (STORED_ON_ONE_SIDE,)


@pytest.mark.parametrize(
    ("field", "changes"),
    [
        ("operational", {"operational": "cloud"}),
        ("sync.enabled", {"sync_enabled": False}),
        ("updated_at", {"updated_at": 1_701}),
        ("updated_by", {"updated_by": "u2"}),
        ("version", {"version": 4}),
    ],
)
def test_each_field_that_differs_is_named(field: str, changes: dict[str, object]) -> None:
    assert field in POLICY_FIELDS
    assert policy_differences(STORED, dataclasses.replace(STORED, **changes)) == (field,)


def test_several_differences_come_in_the_contract_order() -> None:
    other = dataclasses.replace(STORED, version=9, operational="cloud", updated_by="u9")
    assert policy_differences(STORED, other) == ("operational", "updated_by", "version")
