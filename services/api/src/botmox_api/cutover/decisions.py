"""What a backfill does with one tenant, from its document on each side: the rules in one place.

The source drives: nothing stored in the source, nothing done (a tenant only in the target is left
alone); an invalid source document is never copied; equal documents (``policy_differences`` is
empty) are left alone, which is what makes a second run write nothing; a target newer than the
source, or invalid, is kept unless ``--force``. Anything else is copied exactly (``updated_at``,
``updated_by`` and ``version`` included), conditionally on the target's version as read.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Final

from botmox_api.cutover.survey import Stored
from botmox_api.model import (
    BACKEND_TITLES,
    DataBackend,
    InvalidStoredPolicy,
    StoragePolicy,
    policy_differences,
)


class Decision(enum.StrEnum):
    create = "create"
    update = "update"
    overwrite = "overwrite"
    equal = "equal"
    target_only = "target_only"
    nothing = "nothing"
    source_invalid = "source_invalid"
    target_newer = "target_newer"
    target_invalid = "target_invalid"
    conflict = "conflict"


WRITES: Final = frozenset({Decision.create, Decision.update, Decision.overwrite})
SKIPS: Final = frozenset(
    {Decision.source_invalid, Decision.target_newer, Decision.target_invalid, Decision.conflict}
)
DECISION_TITLES: Final[dict[Decision, str]] = {
    Decision.create: "copied (target had none)",
    Decision.update: "copied (target older or different)",
    Decision.overwrite: "copied over a newer or invalid target (--force)",
    Decision.equal: "already equal",
    Decision.target_only: "only in the target (left alone)",
    Decision.nothing: "nothing stored",
    Decision.source_invalid: "skipped: source invalid",
    Decision.target_newer: "skipped: target newer",
    Decision.target_invalid: "skipped: target invalid",
    Decision.conflict: "skipped: changed during the backfill",
}


@dataclass(frozen=True, slots=True)
class Step:
    """One tenant's decision; ``policy`` and ``expected_version`` are the write a copy makes."""

    tenant: str
    decision: Decision
    reason: str = ""
    policy: StoragePolicy | None = None
    expected_version: int | None = None


def _version(stored: Stored) -> int | None:
    return None if stored is None else stored.version


def decide(
    tenant: str,
    source: Stored,
    target: Stored,
    *,
    source_backend: DataBackend,
    target_backend: DataBackend,
    force: bool,
) -> Step:
    source_title, target_title = BACKEND_TITLES[source_backend], BACKEND_TITLES[target_backend]
    if source is None:
        return Step(tenant, Decision.nothing if target is None else Decision.target_only)
    if isinstance(source, InvalidStoredPolicy):
        return Step(tenant, Decision.source_invalid, f"{source_title} document invalid: {source.reason}")
    if target is None:
        return Step(tenant, Decision.create, policy=source)
    if isinstance(target, InvalidStoredPolicy):
        if not force:
            return Step(
                tenant,
                Decision.target_invalid,
                f"{target_title} document invalid: {target.reason} (--force overwrites it)",
            )
        if target.version is None:
            return Step(
                tenant,
                Decision.target_invalid,
                f"{target_title} document invalid and without a version: {target.reason} "
                "(it cannot be overwritten conditionally; repair or remove it by hand)",
            )
        return Step(tenant, Decision.overwrite, policy=source, expected_version=target.version)
    if not policy_differences(source, target):
        return Step(tenant, Decision.equal)
    if target.updated_at > source.updated_at:
        if not force:
            return Step(
                tenant,
                Decision.target_newer,
                f"{target_title} is newer (updated_at {target.updated_at} > {source.updated_at}, "
                f"by {target.updated_by}) (--force overwrites it)",
            )
        return Step(tenant, Decision.overwrite, policy=source, expected_version=_version(target))
    return Step(tenant, Decision.update, policy=source, expected_version=_version(target))


def conflicted(step: Step, current_version: int | None) -> Step:
    """The step of a write the target refused: the tenant changed between the read and the write."""
    now = "deleted" if current_version is None else f"now at version {current_version}"
    return Step(
        step.tenant, Decision.conflict, f"changed during the backfill ({now}): run the backfill again"
    )
