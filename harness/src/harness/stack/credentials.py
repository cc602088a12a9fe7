"""Per-stack secrets, generated fresh by every ``up`` with ``secrets``; never fixed in code."""

from __future__ import annotations

import secrets
from dataclasses import dataclass

# The API refuses internal tokens shorter than 32 characters; token_urlsafe(32) gives 43.
_TOKEN_BYTES = 32


@dataclass(frozen=True, slots=True)
class StackCredentials:
    jwt_secret: str
    internal_api_token: str
    internal_infra_token: str
    db_api_password: str

    @classmethod
    def generate(cls) -> StackCredentials:
        return cls(
            jwt_secret=secrets.token_urlsafe(48),
            internal_api_token=secrets.token_urlsafe(_TOKEN_BYTES),
            internal_infra_token=secrets.token_urlsafe(_TOKEN_BYTES),
            db_api_password=secrets.token_urlsafe(24),
        )

    def placeholders(self) -> dict[str, str]:
        return {
            "secret.jwt_secret": self.jwt_secret,
            "secret.internal_api_token": self.internal_api_token,
            "secret.internal_infra_token": self.internal_infra_token,
            "secret.db_api_password": self.db_api_password,
        }
