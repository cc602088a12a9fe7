"""Authentication: a bearer token becomes a ``Principal`` or an ``Unauthorized``/``Forbidden``.

Order (``docs/contracts/api-v1.md``): ``INTERNAL_INFRA_TOKEN``, ``INTERNAL_API_TOKEN`` (constant-time),
a Supabase access token (HS256, verified locally), a Firebase ID token (firebase-admin). A token's header
picks between the last two: only an HS256 token can be a Supabase token, and firebase-admin refuses
HS256 anyway, so no token is verified twice.

Two steps, so that the request gate can refuse an address that is over its rate limit between them:
``internal`` (a constant-time comparison, cheap) and ``verify`` (a signature check, the costly part).
"""

from __future__ import annotations

import hmac
from collections.abc import Mapping
from typing import Final

import jwt

from botmox_api.config import ApiSettings
from botmox_api.errors import Unauthorized
from botmox_api.firebase_tokens import FirebaseTokenError, FirebaseTokenVerifier
from botmox_api.principal import KNOWN_ROLES, Principal, PrincipalSource
from botmox_api.tenancy import tenant_of_claims

SUPABASE_ALGORITHM: Final = "HS256"
CLOCK_SKEW_S: Final = 30
_MISSING_TOKEN: Final = "Bearer token is required"  # noqa: S105 - a message
_INVALID_TOKEN: Final = "Invalid or expired token"  # noqa: S105 - a message


def bearer_token(authorization: str | None) -> str | None:
    """The token of ``Authorization: Bearer <token>`` (scheme case-insensitive); else ``None``."""
    if not authorization:
        return None
    scheme, _, token = authorization.strip().partition(" ")
    if scheme.lower() != "bearer":
        return None
    token = token.strip()
    return token or None


def _roles(extra: object) -> tuple[str, ...]:
    roles = ["api"]
    if isinstance(extra, list):
        for role in extra:
            if isinstance(role, str) and role in KNOWN_ROLES and role not in roles:
                roles.append(role)
    return tuple(roles)


def _user_principal(claims: Mapping[str, object], uid: str, source: PrincipalSource) -> Principal:
    app_metadata = claims.get("app_metadata")
    extra_roles = app_metadata.get("roles") if isinstance(app_metadata, Mapping) else None
    if extra_roles is None and source == "firebase":
        extra_roles = claims.get("roles")  # Firebase custom claims sit at the top level
    email = claims.get("email")
    return Principal(
        uid=uid,
        email=email if isinstance(email, str) else None,
        roles=_roles(extra_roles),
        source=source,
        tenant_id=tenant_of_claims(claims),
    )


class Authenticator:
    """Built once per app; holds the decoded secrets so the hot path only compares and verifies."""

    def __init__(self, settings: ApiSettings, firebase: FirebaseTokenVerifier | None) -> None:
        self._firebase = firebase
        self._internal: list[tuple[bytes, Principal]] = []
        tenant = settings.default_tenant_id
        infra = settings.secret("internal_infra_token")
        api = settings.secret("internal_api_token")
        if infra:
            self._internal.append(
                (
                    infra.encode(),
                    Principal("internal-infra", "infra@internal", ("infra", "admin"), "internal", tenant),
                )
            )
        if api:
            self._internal.append(
                (api.encode(), Principal("internal-api", "api@internal", ("api",), "internal", tenant))
            )
        self._jwt_secret = settings.secret("supabase_jwt_secret")
        self._audience = settings.supabase_jwt_audience
        self._issuer = settings.supabase_jwt_issuer

    def internal(self, token: str | None) -> Principal | None:
        """The internal principal whose token this is, else ``None`` (no signature is checked)."""
        if token is None:
            return None
        candidate = token.encode("utf-8", "surrogateescape")
        found: Principal | None = None
        # Compare against every configured token so timing does not reveal which one matched.
        for secret, principal in self._internal:
            if hmac.compare_digest(candidate, secret) and found is None:
                found = principal
        return found

    def _supabase_claims(self, token: str, secret: str) -> Mapping[str, object]:
        try:
            claims: dict[str, object] = jwt.decode(
                token,
                secret,
                algorithms=[SUPABASE_ALGORITHM],
                audience=self._audience,
                issuer=self._issuer,
                leeway=CLOCK_SKEW_S,
                options={"require": ["exp", "sub"], "verify_iat": True, "verify_nbf": True},
            )
        except jwt.PyJWTError:
            raise Unauthorized(_INVALID_TOKEN) from None
        return claims

    async def verify(self, token: str | None) -> Principal:
        """A user token (Supabase or Firebase) as a principal; ``Unauthorized`` otherwise. Call it
        after ``internal`` found no internal principal."""
        if token is None:
            raise Unauthorized(_MISSING_TOKEN)
        try:
            algorithm = jwt.get_unverified_header(token).get("alg")
        except jwt.PyJWTError:
            raise Unauthorized(_INVALID_TOKEN) from None
        if algorithm == SUPABASE_ALGORITHM and self._jwt_secret:
            claims = self._supabase_claims(token, self._jwt_secret)
            subject = claims.get("sub")
            if not isinstance(subject, str) or not subject:
                raise Unauthorized(_INVALID_TOKEN)
            return _user_principal(claims, subject, "supabase")
        if self._firebase is not None and algorithm != SUPABASE_ALGORITHM:
            try:
                claims = await self._firebase.verify(token)
            except FirebaseTokenError:
                raise Unauthorized(_INVALID_TOKEN) from None
            uid = claims.get("uid") or claims.get("sub")
            if not isinstance(uid, str) or not uid:
                raise Unauthorized(_INVALID_TOKEN)
            return _user_principal(claims, uid, "firebase")
        raise Unauthorized(_INVALID_TOKEN)
