"""Authentication: a bearer token becomes a ``Principal`` or an ``Unauthorized``/``Forbidden``.

Order (``docs/contracts/api-v1.md``): ``INTERNAL_INFRA_TOKEN``, ``INTERNAL_API_TOKEN`` (constant-time),
a Supabase access token (HS256, verified locally), a Firebase ID token (firebase-admin). A token's header
picks between the last two: only an HS256 token can be a Supabase token, and firebase-admin refuses
HS256 anyway, so no token is verified twice.

Two steps, so that the request gate can refuse an address that is over its rate limit between them:
``internal`` (a constant-time comparison, cheap) and ``verify`` (a signature check, the costly part).

A user token is verified once: ``verify`` keeps the principal it made in a ``VerifiedTokens`` cache,
keyed by the whole token, and answers the same token from there until the token's ``exp``. Only
tokens that passed every check get an entry, and never one already past its ``exp``: the cache never
lets through a token that a fresh check would refuse, except that it keeps serving a token up to its
``exp`` even if its signing secret were rotated meanwhile (a restart drops the cache). Past ``exp``
the token is checked again (the 30 s of skew still apply), and that answer is not kept. The cache
holds ``TOKEN_CACHE_SIZE`` entries at most, the least recently used leaving first; internal tokens
never enter it (their check is a comparison).

Tenancy ("Tenancy" in the contract): ``app_metadata.tenant_id`` wins over a top-level ``tenant_id``;
``null`` and ``""`` count as absent; a present value of any other type is invalid. The id is
lower-cased, then matched against ``TENANT_ID_PATTERN``. A user token never falls back to
``DEFAULT_TENANT_ID``.

Firebase ID tokens are verified with firebase-admin, on an ``App`` of the API's own, named uniquely so
it never collides with the RTDB store's app or another API instance in the same process, and deleted
at shutdown. Verification needs no service account (Google's public certificates are fetched
unauthenticated), so the app gets an anonymous credential; with ``FIREBASE_AUTH_EMULATOR_HOST`` in the
process environment firebase-admin accepts unsigned tokens (the emulator convention), which is why
production refuses that variable (``config.py``).
"""

from __future__ import annotations

import hmac
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import partial
from typing import Any, Final, Literal, cast

import anyio.to_thread
import firebase_admin
import jwt
from firebase_admin import auth as firebase_auth
from firebase_admin import credentials
from google.auth.credentials import AnonymousCredentials

from botmox_api.config import ApiSettings
from botmox_api.errors import Forbidden, Unauthorized
from botmox_api.model import TENANT_ID_PATTERN

SUPABASE_ALGORITHM: Final = "HS256"
# docs/contracts/api-v1.md allows user tokens 30 s of skew (firebase-admin accepts at most 60 s).
CLOCK_SKEW_S: Final = 30
_MISSING_TOKEN: Final = "Bearer token is required"  # noqa: S105 - a message
_INVALID_TOKEN: Final = "Invalid or expired token"  # noqa: S105 - a message

# --- Who is calling: the principal that ``GET /api/v1/auth/verify`` returns.

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


# --- The tenant of a user token.


def _present(value: object) -> bool:
    return value is not None and value != ""


def tenant_of_claims(claims: Mapping[str, object]) -> str:
    """The caller's tenant id; raises ``Forbidden`` ("Token has no tenant" / "Invalid tenant id")."""
    app_metadata = claims.get("app_metadata")
    candidate: object = None
    if isinstance(app_metadata, Mapping) and _present(app_metadata.get("tenant_id")):
        candidate = app_metadata.get("tenant_id")
    elif _present(claims.get("tenant_id")):
        candidate = claims.get("tenant_id")
    if candidate is None:
        raise Forbidden("Token has no tenant")
    if not isinstance(candidate, str):
        raise Forbidden("Invalid tenant id")
    tenant_id = candidate.lower()
    if not TENANT_ID_PATTERN.match(tenant_id):
        raise Forbidden("Invalid tenant id")
    return tenant_id


# --- Firebase ID tokens.


class _AnonymousCredential(credentials.Base):  # type: ignore[misc]
    def get_credential(self) -> Any:
        return AnonymousCredentials()  # type: ignore[no-untyped-call]


class FirebaseTokenError(Exception):
    """The token is not a valid Firebase ID token (or could not be checked)."""


class FirebaseTokenVerifier:
    def __init__(self, project_id: str) -> None:
        self._app = firebase_admin.initialize_app(
            _AnonymousCredential(), {"projectId": project_id}, name=f"botmox-api-auth-{uuid.uuid4().hex}"
        )

    def _verify_blocking(self, token: str) -> Mapping[str, object]:
        try:
            claims = firebase_auth.verify_id_token(token, app=self._app, clock_skew_seconds=CLOCK_SKEW_S)
        except (
            ValueError,
            firebase_auth.InvalidIdTokenError,
            firebase_auth.ExpiredIdTokenError,
            firebase_auth.CertificateFetchError,
        ) as error:
            raise FirebaseTokenError(type(error).__name__) from None
        return cast(Mapping[str, object], claims)

    async def verify(self, token: str) -> Mapping[str, object]:
        # Outside the emulator, the first call per hour fetches certificates: keep it off the loop.
        return await anyio.to_thread.run_sync(partial(self._verify_blocking, token))

    def close(self) -> None:
        firebase_admin.delete_app(self._app)


# --- Verified tokens.


class VerifiedTokens:
    """A bounded LRU map from a verified token to its principal and ``exp`` (epoch seconds).

    Single-threaded use on the event loop: no locks. ``clock`` is wall-clock time, as ``exp`` is.
    """

    def __init__(self, max_entries: int, *, clock: Callable[[], float] = time.time) -> None:
        self._max = max_entries
        self._clock = clock
        self._entries: OrderedDict[str, tuple[Principal, float]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, token: str) -> Principal | None:
        entry = self._entries.get(token)
        if entry is None:
            return None
        principal, expires_at = entry
        if self._clock() >= expires_at:
            del self._entries[token]
            return None
        self._entries.move_to_end(token)
        return principal

    def put(self, token: str, principal: Principal, expires_at: object) -> None:
        """Keep ``principal`` until ``expires_at`` (the token's ``exp``); a token without a usable
        ``exp``, or already past it, is not kept."""
        if self._max <= 0 or isinstance(expires_at, bool) or not isinstance(expires_at, int | float):
            return
        if self._clock() >= expires_at:
            return
        self._entries[token] = (principal, float(expires_at))
        self._entries.move_to_end(token)
        while len(self._entries) > self._max:
            self._entries.popitem(last=False)


# --- Bearer tokens.


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

    def __init__(
        self,
        settings: ApiSettings,
        firebase: FirebaseTokenVerifier | None,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._firebase = firebase
        self._verified = VerifiedTokens(settings.token_cache_size, clock=clock)
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
        cached = self._verified.get(token)
        if cached is not None:
            return cached
        principal, expires_at = await self._verify_uncached(token)
        self._verified.put(token, principal, expires_at)
        return principal

    async def _verify_uncached(self, token: str) -> tuple[Principal, object]:
        """The principal and the token's ``exp``, or ``Unauthorized``/``Forbidden``."""
        try:
            algorithm = jwt.get_unverified_header(token).get("alg")
        except jwt.PyJWTError:
            raise Unauthorized(_INVALID_TOKEN) from None
        if algorithm == SUPABASE_ALGORITHM and self._jwt_secret:
            claims = self._supabase_claims(token, self._jwt_secret)
            subject = claims.get("sub")
            if not isinstance(subject, str) or not subject:
                raise Unauthorized(_INVALID_TOKEN)
            return _user_principal(claims, subject, "supabase"), claims.get("exp")
        if self._firebase is not None and algorithm != SUPABASE_ALGORITHM:
            try:
                claims = await self._firebase.verify(token)
            except FirebaseTokenError:
                raise Unauthorized(_INVALID_TOKEN) from None
            uid = claims.get("uid") or claims.get("sub")
            if not isinstance(uid, str) or not uid:
                raise Unauthorized(_INVALID_TOKEN)
            return _user_principal(claims, uid, "firebase"), claims.get("exp")
        raise Unauthorized(_INVALID_TOKEN)
