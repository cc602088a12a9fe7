"""Who the RTDB stores are to the database: the ``Authorization`` header of each request.

An emulator gets ``Bearer owner``, as firebase-admin sends it (the emulator grants that token
everything). Production gets an OAuth2 access token of the service account in
``GOOGLE_APPLICATION_CREDENTIALS``, else of Application Default Credentials, loaded through
``firebase_admin.credentials`` so the scopes are the ones firebase-admin asks for the RTDB.

google-auth loads and refreshes credentials with blocking I/O (a file, an HTTP call to Google's
token endpoint or the metadata server). Both run in a worker thread, one at a time under a lock,
and only when due: the credentials on first use, a refresh when the token is within google-auth's
refresh threshold (3 min 45 s) of expiring, or after RTDB refused it (401). Every other request
reads the cached token without leaving the event loop.
"""

from __future__ import annotations

import asyncio
import datetime
import time
from typing import Any, Final

import anyio.to_thread
import google.auth.transport.requests
import requests
from firebase_admin import credentials

EMULATOR_AUTHORIZATION: Final = "Bearer owner"
# google-auth's own threshold: a token this close to expiring counts as expired.
REFRESH_MARGIN: Final = datetime.timedelta(minutes=3, seconds=45)


class AccessToken:
    """The ``Authorization`` header for a production RTDB; loads nothing until first asked."""

    def __init__(self, credentials_path: str | None) -> None:
        self._credentials_path = credentials_path
        self._credential: Any = None
        self._header = ""
        self._fresh_until = 0.0  # time.monotonic() after which the token must be refreshed
        self._lock = asyncio.Lock()

    async def authorization(self) -> str:
        if time.monotonic() < self._fresh_until:
            return self._header
        async with self._lock:
            if time.monotonic() >= self._fresh_until:  # not refreshed by whoever held the lock
                await anyio.to_thread.run_sync(self._refresh)
        return self._header

    def expire(self) -> None:
        """RTDB refused the token (401): the next request gets a new one."""
        self._fresh_until = 0.0

    def _refresh(self) -> None:
        """Blocking: loads the credentials the first time, then fetches a new access token."""
        if self._credential is None:
            self._credential = self._load()
        credential = self._credential
        with requests.Session() as session:  # closed at once: a refresh is due about hourly
            credential.refresh(google.auth.transport.requests.Request(session))
        self._header = f"Bearer {credential.token}"
        expiry: datetime.datetime | None = credential.expiry
        if expiry is None:
            self._fresh_until = float("inf")
            return
        # google-auth's expiry is a naive UTC datetime; refresh as early as google-auth would.
        now = datetime.datetime.now(datetime.UTC).replace(tzinfo=None)
        remaining = expiry - REFRESH_MARGIN - now
        self._fresh_until = time.monotonic() + remaining.total_seconds()

    def _load(self) -> Any:
        if self._credentials_path:
            return credentials.Certificate(self._credentials_path).get_credential()
        return credentials.ApplicationDefault().get_credential()
