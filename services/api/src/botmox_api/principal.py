"""Who is calling: the principal that ``GET /api/v1/auth/verify`` returns."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

PrincipalSource = Literal["internal", "supabase", "firebase"]
KNOWN_ROLES = frozenset({"api", "admin", "infra"})
SETTINGS_ROLES = frozenset({"api", "admin"})


@dataclass(frozen=True, slots=True)
class Principal:
    uid: str
    email: str | None
    roles: tuple[str, ...]
    source: PrincipalSource
    tenant_id: str

    @property
    def is_internal(self) -> bool:
        return self.source == "internal"

    @property
    def rate_limit_key(self) -> str:
        return f"p:{self.tenant_id}:{self.uid}"

    def has_any_role(self, roles: frozenset[str]) -> bool:
        return not roles.isdisjoint(self.roles)

    def to_json(self) -> dict[str, object]:
        return {
            "uid": self.uid,
            "email": self.email,
            "roles": list(self.roles),
            "source": self.source,
            "tenant_id": self.tenant_id,
        }
