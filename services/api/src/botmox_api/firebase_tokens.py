"""Firebase ID token verification with firebase-admin, on an ``App`` of the API's own.

The app is named uniquely so it never collides with the RTDB store's app or another API instance in
the same process, and is deleted at shutdown. Verification needs no service account (Google's
public certificates are fetched unauthenticated), so the app gets an anonymous credential; with
``FIREBASE_AUTH_EMULATOR_HOST`` in the process environment firebase-admin accepts unsigned tokens
(the emulator convention), which is why production refuses that variable (``config.py``).
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from functools import partial
from typing import Any, cast

import anyio.to_thread
import firebase_admin
from firebase_admin import auth, credentials
from google.auth.credentials import AnonymousCredentials

# firebase-admin accepts at most 60 s; docs/contracts/api-v1.md allows user tokens 30 s of skew.
CLOCK_SKEW_S = 30


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
            claims = auth.verify_id_token(token, app=self._app, clock_skew_seconds=CLOCK_SKEW_S)
        except (
            ValueError,
            auth.InvalidIdTokenError,
            auth.ExpiredIdTokenError,
            auth.CertificateFetchError,
        ) as error:
            raise FirebaseTokenError(type(error).__name__) from None
        return cast(Mapping[str, object], claims)

    async def verify(self, token: str) -> Mapping[str, object]:
        # Outside the emulator, the first call per hour fetches certificates: keep it off the loop.
        return await anyio.to_thread.run_sync(partial(self._verify_blocking, token))

    def close(self) -> None:
        firebase_admin.delete_app(self._app)
