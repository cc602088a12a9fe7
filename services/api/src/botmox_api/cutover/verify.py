"""``verify``: field by field, every difference with both values; both sides match or not.

A tenant stored on one side only differs in ``document`` (``model.STORED_ON_ONE_SIDE``), and so does
a tenant whose document is invalid on a side (the invalid side's value is its reason).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Final

from botmox_api.cutover import legacy
from botmox_api.cutover.progress import ProgressReport
from botmox_api.cutover.survey import Backends, Pair, Stored, walk_both_sides
from botmox_api.model import (
    POLICY_FIELDS,
    STORED_ON_ONE_SIDE,
    InvalidStoredPolicy,
    JsonValue,
    StoragePolicy,
    policy_differences,
)

# A field's value as ``verify`` shows it; keyed by the names ``policy_differences`` returns.
FIELD_VALUES: Final[dict[str, Callable[[StoragePolicy], JsonValue]]] = {
    "operational": lambda policy: policy.operational,
    "sync.enabled": lambda policy: policy.sync_enabled,
    "updated_at": lambda policy: policy.updated_at,
    "updated_by": lambda policy: policy.updated_by,
    "version": lambda policy: policy.version,
}
assert tuple(FIELD_VALUES) == POLICY_FIELDS, "verify shows every field policy_differences compares"


@dataclass(frozen=True, slots=True)
class Difference:
    tenant: str
    field: str
    rtdb: JsonValue
    supabase: JsonValue


@dataclass(slots=True)
class VerifyResult:
    tenants: int = 0
    differences: list[Difference] = field(default_factory=list)
    different_tenants: int = 0
    legacy: legacy.LegacyOutcome | None = None
    seconds: float = 0.0

    @property
    def match(self) -> bool:
        return not self.differences


def _document(stored: Stored) -> JsonValue:
    if stored is None:
        return "absent"
    if isinstance(stored, InvalidStoredPolicy):
        return f"invalid: {stored.reason}"
    return f"stored (version {stored.version})"


def differences(pair: Pair) -> list[Difference]:
    rtdb, supabase = pair.rtdb, pair.supabase
    if isinstance(rtdb, InvalidStoredPolicy) or isinstance(supabase, InvalidStoredPolicy):
        return [Difference(pair.tenant, STORED_ON_ONE_SIDE, _document(rtdb), _document(supabase))]
    names = policy_differences(rtdb, supabase)
    if rtdb is None or supabase is None:
        return [Difference(pair.tenant, name, _document(rtdb), _document(supabase)) for name in names]
    return [
        Difference(pair.tenant, name, FIELD_VALUES[name](rtdb), FIELD_VALUES[name](supabase))
        for name in names
    ]


async def run_verify(
    backends: Backends,
    *,
    tenants: Sequence[str],
    batch_size: int,
    default_tenant: str,
    progress: ProgressReport,
) -> VerifyResult:
    started = time.monotonic()
    result = VerifyResult()
    if backends.legacy is not None:
        result.legacy = await legacy.inspect(backends.legacy, default_tenant)

    def on_batch(pairs: list[Pair]) -> None:
        for pair in pairs:
            found = differences(pair)
            if found:
                result.differences.extend(found)
                result.different_tenants += 1
        result.tenants += len(pairs)
        progress.update(result.tenants, {"different": result.different_tenants})

    await walk_both_sides(
        backends, tenants=tenants, batch_size=batch_size, progress=progress, on_batch=on_batch
    )
    result.seconds = time.monotonic() - started
    return result
