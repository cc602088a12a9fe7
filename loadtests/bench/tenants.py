"""The bench's tenants: one valid user token each, the files wrk and the floor read them from, and a
stored storage policy each, written through the API itself (so the data has the API's own shape in
either store).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import httpx
import jwt

from harness.stack.tokens import demo_token

POLICY_PATH: Final = "/api/v1/settings/storage_policy"
AUDIENCE: Final = "authenticated"
SEED_POLICY: Final = {"operational": "cloud", "sync": {"enabled": False}}
SEED_CONNECTIONS: Final = 16
TOKEN_LIFETIME_S: Final = 6 * 3600


@dataclass(frozen=True, slots=True)
class Tenant:
    tenant_id: str
    uid: str
    token: str


def mint(count: int, secret: str) -> list[Tenant]:
    """``bench-0000`` ... : one HS256 user token each, minted as the harness mints the demo tenant's."""
    tenants = []
    for index in range(count):
        tenant_id = f"bench-{index:04d}"
        token = demo_token(secret=secret, audience=AUDIENCE, tenant_id=tenant_id, lifetime_s=TOKEN_LIFETIME_S)
        claims = jwt.decode(token, options={"verify_signature": False})
        tenants.append(Tenant(tenant_id, str(claims["sub"]), token))
    return tenants


def write_tokens(tenants: Sequence[Tenant], path: Path) -> Path:
    """One token a line: what ``storage_policy.lua`` picks from."""
    path.write_text("".join(f"{tenant.token}\n" for tenant in tenants))
    return path


def write_floor_map(tenants: Sequence[Tenant], path: Path) -> Path:
    """``{token: [tenant_id, uid]}``: the floor's stand-in for verifying a token."""
    path.write_text(json.dumps({tenant.token: [tenant.tenant_id, tenant.uid] for tenant in tenants}))
    return path


class SeedFailed(RuntimeError):
    """A tenant's policy could not be written."""


async def _seed(base_url: str, tenants: Sequence[Tenant]) -> None:
    pending = list(tenants)
    limits = httpx.Limits(max_connections=SEED_CONNECTIONS)
    async with httpx.AsyncClient(base_url=base_url, limits=limits, timeout=30, trust_env=False) as client:

        async def worker() -> None:
            while pending:
                tenant = pending.pop()
                headers = {"Authorization": f"Bearer {tenant.token}"}
                answer = await client.put(POLICY_PATH, json=SEED_POLICY, headers=headers)
                if answer.status_code != 200:
                    raise SeedFailed(f"PUT for {tenant.tenant_id}: {answer.status_code} {answer.text[:300]}")

        await asyncio.gather(*(worker() for _ in range(SEED_CONNECTIONS)))


def seed(base_url: str, tenants: Sequence[Tenant]) -> None:
    """PUT a storage policy for every tenant through the API at ``base_url``."""
    asyncio.run(_seed(base_url, tenants))
