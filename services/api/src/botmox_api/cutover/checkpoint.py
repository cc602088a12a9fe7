"""Where an interrupted backfill resumes: a JSON file written after every completed batch.

It holds the run's key (direction, ``--force``, the tenant selection and the deployment), the
last tenant of the last completed batch and the figures so far, so a resumed run's summary covers
the whole run. A run with another key starts from the beginning (and says so); a complete run
removes the file. Safety does not rest on it: every write is one conditional store call and equal
tenants are left alone, so redoing a batch, or the whole run, converges on the same result.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final, Self

from botmox_api.model import DataBackend

CHECKPOINT_DIR: Final = Path(".cutover")
FORMAT: Final = 1


def default_path(source: DataBackend, target: DataBackend) -> Path:
    return CHECKPOINT_DIR / f"backfill-{source}-to-{target}.json"


def run_key(
    source: DataBackend,
    target: DataBackend,
    *,
    force: bool,
    tenants: Sequence[str],
    deployment: str = "",
) -> str:
    """Identifies a run: a checkpoint is resumed only by a run with the same key. ``deployment``
    fingerprints where the backends are (``backends.deployment_of``)."""
    selection = (
        hashlib.sha256("\n".join(sorted(set(tenants))).encode()).hexdigest()[:16] if tenants else "all"
    )
    return f"{source}-to-{target};force={force};tenants={selection};deployment={deployment}"


@dataclass(slots=True)
class Checkpoint:
    key: str
    last_tenant: str
    counts: dict[str, int] = field(default_factory=dict)
    skipped: list[dict[str, str]] = field(default_factory=list)
    saved_at: float = 0.0
    """When it was written (epoch seconds): a resumed run says how old the checkpoint is, since the
    tenants before it are not walked again however long ago they were copied."""

    def to_json(self) -> str:
        document = {
            "format": FORMAT,
            "key": self.key,
            "last_tenant": self.last_tenant,
            "counts": self.counts,
            "skipped": self.skipped,
            "saved_at": self.saved_at,
        }
        return json.dumps(document, indent=1)

    @classmethod
    def from_json(cls, text: str) -> Self | None:
        """``None`` for a file of another format or shape (it is then ignored, never trusted)."""
        try:
            document = json.loads(text)
            if document.get("format") != FORMAT:
                return None
            return cls(
                key=str(document["key"]),
                last_tenant=str(document["last_tenant"]),
                counts={str(k): int(v) for k, v in document["counts"].items()},
                skipped=[{str(k): str(v) for k, v in item.items()} for item in document["skipped"]],
                saved_at=float(document.get("saved_at", 0.0)),
            )
        except (ValueError, KeyError, TypeError, AttributeError):
            return None


def load(path: Path) -> Checkpoint | None:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    return Checkpoint.from_json(text)


def save(path: Path, checkpoint: Checkpoint) -> None:
    """Atomically: a crash leaves the previous checkpoint or this one, never half of one."""
    checkpoint.saved_at = time.time()
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(checkpoint.to_json(), encoding="utf-8")
    os.replace(temporary, path)


def age(checkpoint: Checkpoint) -> str:
    """How long ago it was written, as a person says it: ``40 s``, ``12 min``, ``3.5 h``, ``2.0 days``."""
    seconds = max(0.0, time.time() - checkpoint.saved_at)
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 2 * 3600:
        return f"{seconds / 60:.0f} min"
    if seconds < 2 * 86_400:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86_400:.1f} days"


def remove(path: Path) -> None:
    path.unlink(missing_ok=True)
