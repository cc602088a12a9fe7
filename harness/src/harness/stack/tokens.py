"""A ready-to-use bearer token for the demo tenant: a Supabase-style access token (HS256).

It carries what the API checks (``sub``, ``aud``, ``exp``, ``app_metadata.tenant_id``, roles) and
what Supabase's own tokens have (``role``, ``email``), signed with the stack's JWT secret.
"""

from __future__ import annotations

import time
import uuid

import jwt

DEMO_TENANT_ID = "demo"
DEMO_EMAIL = "demo@botmox.local"
TOKEN_LIFETIME_S = 12 * 3600


def demo_token(
    *,
    secret: str,
    audience: str,
    issuer: str | None = None,
    tenant_id: str = DEMO_TENANT_ID,
    lifetime_s: int = TOKEN_LIFETIME_S,
    now: float | None = None,
) -> str:
    issued = int(now if now is not None else time.time())
    claims: dict[str, object] = {
        "sub": str(uuid.uuid5(uuid.NAMESPACE_URL, f"botmox-demo:{tenant_id}")),
        "email": DEMO_EMAIL,
        "aud": audience,
        "role": "authenticated",
        "iat": issued,
        "exp": issued + lifetime_s,
        "app_metadata": {"tenant_id": tenant_id, "roles": ["api"]},
    }
    if issuer is not None:
        claims["iss"] = issuer
    return jwt.encode(claims, secret, algorithm="HS256")
