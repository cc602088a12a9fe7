"""The pre-tenant global ``settings/storage_policy`` node of RTDB: always reported, adopted into the
default tenant's RTDB policy only on request (``backfill --adopt-legacy``).

Adoption writes the node's policy to the default tenant (when it has none, an older one, or, with
``--force``, a newer or invalid one), then removes the node, both conditionally, before the tenants
are copied, so the adopted policy flows on in the same run. The version written is above the
tenant's current one, so an ETag a client holds for the tenant never matches the adopted policy.
"""

from __future__ import annotations

import dataclasses
import enum
from dataclasses import dataclass
from typing import Final

from botmox_api.model import InvalidStoredPolicy, StoragePolicy, VersionConflict, policy_differences
from botmox_api.stores.protocols import LegacyStoragePolicySource, StoragePolicyBackfillStore

LEGACY_NODE: Final = "settings/storage_policy"


class LegacyAction(enum.StrEnum):
    absent = "absent"
    present = "present"
    would_adopt = "would_adopt"
    adopted = "adopted"
    invalid = "invalid"
    tenant_newer = "tenant_newer"
    tenant_invalid = "tenant_invalid"
    conflict = "conflict"


# Adoption was asked for and did not happen: the backfill exits 1.
NOT_ADOPTED: Final = frozenset(
    {LegacyAction.invalid, LegacyAction.tenant_newer, LegacyAction.tenant_invalid, LegacyAction.conflict}
)


@dataclass(frozen=True, slots=True)
class LegacyOutcome:
    action: LegacyAction
    message: str


def _present(default_tenant: str) -> LegacyOutcome:
    return LegacyOutcome(
        LegacyAction.present,
        f"legacy {LEGACY_NODE} present; --adopt-legacy moves it to tenant {default_tenant!r}",
    )


async def inspect(source: LegacyStoragePolicySource, default_tenant: str) -> LegacyOutcome:
    """What ``plan``, ``verify`` and a backfill without ``--adopt-legacy`` report."""
    node = await source.read_legacy()
    if node is None:
        return LegacyOutcome(LegacyAction.absent, f"no legacy {LEGACY_NODE}")
    outcome = _present(default_tenant)
    if isinstance(node, InvalidStoredPolicy):
        return LegacyOutcome(outcome.action, f"{outcome.message} (but it is invalid: {node.reason})")
    return outcome


async def adopt(
    source: LegacyStoragePolicySource,
    rtdb: StoragePolicyBackfillStore,
    default_tenant: str,
    *,
    force: bool,
    dry_run: bool,
) -> LegacyOutcome:
    node = await source.read_legacy()
    if node is None:
        return LegacyOutcome(LegacyAction.absent, f"no legacy {LEGACY_NODE}")
    if isinstance(node, InvalidStoredPolicy):
        return LegacyOutcome(
            LegacyAction.invalid, f"legacy {LEGACY_NODE} invalid: {node.reason}; not adopted, left in place"
        )
    tenant = (await rtdb.read_stored([default_tenant])).get(default_tenant)
    into = f"tenant {default_tenant!r}"
    if isinstance(tenant, InvalidStoredPolicy) and (not force or tenant.version is None):
        return LegacyOutcome(
            LegacyAction.tenant_invalid,
            f"legacy {LEGACY_NODE} not adopted: {into}'s RTDB policy is invalid ({tenant.reason})"
            + ("; --force overwrites it" if tenant.version is not None else ""),
        )
    if isinstance(tenant, StoragePolicy):
        differences = policy_differences(node, tenant)
        # Adopted before, and the node's removal did not happen: only the version we raised differs.
        if not differences or (differences == ("version",) and tenant.version > node.version):
            return await _remove(source, node, dry_run, f"legacy {LEGACY_NODE} already in {into}")
        if tenant.updated_at > node.updated_at and not force:
            return LegacyOutcome(
                LegacyAction.tenant_newer,
                f"legacy {LEGACY_NODE} not adopted: {into} has a newer policy (updated_at "
                f"{tenant.updated_at} > {node.updated_at}); --force adopts it anyway",
            )
    current = None if tenant is None else tenant.version
    adopted = node if current is None else dataclasses.replace(node, version=max(node.version, current + 1))
    if dry_run:
        return LegacyOutcome(LegacyAction.would_adopt, f"would adopt legacy {LEGACY_NODE} into {into}")
    try:
        await rtdb.write_stored(default_tenant, adopted, expected_version=current)
    except VersionConflict:
        return LegacyOutcome(
            LegacyAction.conflict,
            f"legacy {LEGACY_NODE} not adopted: {into} changed during the backfill; run it again",
        )
    return await _remove(source, node, dry_run, f"adopted legacy {LEGACY_NODE} into {into}")


async def _remove(
    source: LegacyStoragePolicySource, node: StoragePolicy, dry_run: bool, done: str
) -> LegacyOutcome:
    if dry_run:
        return LegacyOutcome(LegacyAction.would_adopt, f"{done}; would remove the legacy node")
    try:
        await source.remove_legacy(expected_version=node.version)
    except VersionConflict:
        return LegacyOutcome(
            LegacyAction.conflict,
            f"{done}, but the legacy node changed meanwhile and was kept; run the backfill again",
        )
    return LegacyOutcome(LegacyAction.adopted, f"{done}; legacy node removed")
