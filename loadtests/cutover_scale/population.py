"""The tenants ``make cutover-scale`` copies: N storage policies in RTDB, shaped like production's.

A realistic mix, drawn from a seeded ``random.Random`` (the same N and seed give the same data):

- most nodes are what the API writes (``secrets``, ``operational``, ``sync.enabled``, ``updated_at``,
  ``updated_by``, ``version``, ``write_id``), with varied values, authors, times and versions;
- about one in eight is a legacy server's node: no ``version`` (it counts as 1) and no ``write_id``;
- every tenant also has other settings (``theme``, ``proxy``) that the cutover must leave alone;
- ``invalid`` tenants hold a document a copy must report and skip (a field of the wrong type or value,
  an unknown key), and one of them sits under a key that is no valid tenant id.

Seeding is one multi-location ``PATCH`` of ``tenants`` per batch over RTDB's REST protocol (each key
a ``{tenant}/settings`` path), so 10,000 tenants take seconds, not 10,000 round trips. ``saves`` is
what some of them write later (what a catch-up backfill copies), in one ``PATCH`` too.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Final

import httpx

from botmox_api.model import JsonObject, JsonValue

SEED_BATCH: Final = 1000
# Times are epoch milliseconds, as the API writes them: the last year before a fixed instant, so
# the data does not depend on when it is seeded.
NEWEST_MS: Final = 1_796_000_000_000
YEAR_MS: Final = 365 * 24 * 3600 * 1000
LEGACY_SHARE: Final = 8
"""One node in this many is a legacy one."""
INVALID_TENANT_KEY: Final = "Legacy-Upper"
"""A key below ``tenants`` that is no valid tenant id (upper case)."""

# What makes a document invalid for a copy, one per planted tenant in turn: (what, the node's change).
_DEFECTS: Final[tuple[tuple[str, JsonObject], ...]] = (
    ("operational of an unknown value", {"operational": "hybrid"}),
    ("sync.enabled not a boolean", {"sync": {"enabled": "yes"}}),
    ("an unknown key", {"retention_days": 30}),
    ("updated_at not a number", {"updated_at": "yesterday"}),
)


@dataclass(frozen=True, slots=True)
class Population:
    """The seeded tenants and what a copy should make of them."""

    nodes: dict[str, JsonObject]
    """tenant key -> its ``settings`` node (the storage policy and the other settings)."""
    valid: int
    legacy: int
    invalid: tuple[str, ...]
    """The tenant keys whose storage policy a copy must skip."""

    @property
    def tenants(self) -> int:
        return len(self.nodes)


def tenant_id(index: int) -> str:
    return f"scale-{index:05d}"


def _policy(rng: random.Random, *, legacy: bool) -> JsonObject:
    node: JsonObject = {
        "secrets": "local-only",
        "operational": rng.choice(("local", "cloud", "cloud")),
        "sync": {"enabled": rng.random() < 0.4},
        "updated_at": NEWEST_MS - rng.randrange(YEAR_MS),
        "updated_by": f"user-{rng.randrange(50_000):05d}",
    }
    if not legacy:
        node["version"] = 1 + int(rng.expovariate(0.3))
        node["write_id"] = f"{rng.getrandbits(64):016x}"
    return node


def _other_settings(rng: random.Random) -> JsonObject:
    return {
        "theme": {"mode": rng.choice(("dark", "light")), "accent": rng.choice(("teal", "violet", "amber"))},
        "proxy": {"enabled": rng.random() < 0.2, "port": rng.randrange(1024, 65_535)},
    }


def build(count: int, *, invalid: int, seed: int = 15) -> Population:
    """``count`` tenants, ``invalid`` of them (spread over the range) with a document to skip; the
    last invalid one under a key that is no valid tenant id."""
    if not 0 <= invalid <= count:
        raise ValueError(f"invalid must be between 0 and {count}")
    rng = random.Random(seed)
    stride = count // invalid if invalid else 0
    invalid_indexes = {stride * k + stride // 2 for k in range(invalid)}
    nodes: dict[str, JsonObject] = {}
    invalid_keys: list[str] = []
    legacy = 0
    for index in range(count):
        is_legacy = rng.randrange(LEGACY_SHARE) == 0
        policy = _policy(rng, legacy=is_legacy)
        key = tenant_id(index)
        if index in invalid_indexes:
            _what, change = _DEFECTS[len(invalid_keys) % len(_DEFECTS)]
            policy.update(change)
            if len(invalid_keys) == invalid - 1:
                key = INVALID_TENANT_KEY
            invalid_keys.append(key)
        elif is_legacy:
            legacy += 1
        nodes[key] = {**_other_settings(rng), "storage_policy": policy}
    return Population(nodes, valid=count - invalid, legacy=legacy, invalid=tuple(invalid_keys))


def patch_bodies(population: Population, batch: int = SEED_BATCH) -> Iterator[dict[str, JsonValue]]:
    """The multi-location ``PATCH`` bodies of ``tenants``: ``{"<tenant>/settings": node, ...}``,
    ``batch`` tenants each."""
    keys: Sequence[str] = list(population.nodes)
    for start in range(0, len(keys), batch):
        yield {f"{key}/settings": population.nodes[key] for key in keys[start : start + batch]}


def saves(population: Population, count: int) -> dict[str, JsonValue]:
    """What ``count`` tenants saving once more write, as one multi-location ``PATCH`` body of
    ``tenants``: the API's next node (the other ``operational``, the next version, a later
    ``updated_at``), for valid tenants spread over the range."""
    valid = [key for key in population.nodes if key not in population.invalid]
    if not 0 <= count <= len(valid):
        raise ValueError(f"count must be between 0 and {len(valid)}")
    stride = len(valid) // count if count else 0
    body: dict[str, JsonValue] = {}
    for number, key in enumerate(valid[stride // 2 :: stride][:count] if count else []):
        stored = population.nodes[key]["storage_policy"]
        assert isinstance(stored, dict)
        version = stored.get("version", 1)
        assert isinstance(version, int)
        body[f"{key}/settings/storage_policy"] = {
            **stored,
            "operational": "cloud" if stored["operational"] == "local" else "local",
            "updated_at": NEWEST_MS + 1000 * (number + 1),
            "version": version + 1,
            "write_id": f"{number:016x}",
        }
    return body


def _patch(emulator_host: str, namespace: str, bodies: Iterable[dict[str, JsonValue]]) -> None:
    url = f"http://{emulator_host}/tenants.json"
    with httpx.Client(timeout=60, trust_env=False) as client:
        for body in bodies:
            client.patch(url, params={"ns": namespace}, json=body).raise_for_status()


def seed(emulator_host: str, namespace: str, population: Population, batch: int = SEED_BATCH) -> None:
    """Write ``population`` into the emulator at ``emulator_host`` (``127.0.0.1:PORT``), namespace
    ``namespace``; raises ``httpx.HTTPStatusError`` when RTDB refuses a batch."""
    _patch(emulator_host, namespace, patch_bodies(population, batch))


def save(emulator_host: str, namespace: str, population: Population, count: int) -> int:
    """``saves(population, count)`` written to the emulator; how many tenants saved."""
    body = saves(population, count)
    if body:
        _patch(emulator_host, namespace, [body])
    return len(body)
