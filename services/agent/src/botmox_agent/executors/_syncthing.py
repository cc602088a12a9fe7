"""The SyncThing kinds, through SyncThing's REST API on the agent's own SyncThing.

The API key is read from the vault for every command (a rotated key is picked up at once) and goes
only into the ``X-API-Key`` header; messages name the vault entry, never the key. SyncThing answers a
wrong key with 403 (and 401 when a GUI password is set), an unknown device with 404, an unknown
folder with 404 or with 500 "no such folder" depending on the endpoint.
"""

from __future__ import annotations

import logging
import re
from typing import Any, Final

import httpx
from pydantic import JsonValue

from botmox_agent.executors import _http
from botmox_agent.executors._contract import CommandFailed, Progress, SecretResolver
from botmox_agent.executors._handlers import Handlers, handler
from botmox_agent.executors._secrets import resolve
from botmox_agent.vault import SecretRef, SecretValue
from botmox_protocol.kinds import DeviceParams, FolderParams, NoParams

logger: Final = logging.getLogger("botmox_agent.executors.syncthing")
# Printable ASCII without spaces: what a header value may carry as it is.
_API_KEY: Final = re.compile(r"[\x21-\x7e]+")


class SyncthingExecutor:
    """The five ``syncthing.*`` kinds against the SyncThing at ``url``."""

    def __init__(
        self, url: str, api_key: SecretRef, secrets: SecretResolver, client: httpx.AsyncClient
    ) -> None:
        self._url = url
        self._api_key = api_key
        self._secrets = secrets
        self._client = client

    def handlers(self) -> Handlers:
        return {
            "syncthing.status": handler(NoParams, self.status),
            "syncthing.folders.list": handler(NoParams, self.folders),
            "syncthing.folder.rescan": handler(FolderParams, self.rescan),
            "syncthing.device.pause": handler(DeviceParams, self.pause),
            "syncthing.device.resume": handler(DeviceParams, self.resume),
        }

    async def aclose(self) -> None:
        await self._client.aclose()

    async def status(self, params: NoParams, progress: Progress) -> JsonValue:
        key = self._key()
        system = _object(await self._call(key, "GET", "/rest/system/status"), "/rest/system/status")
        version = _object(await self._call(key, "GET", "/rest/system/version"), "/rest/system/version")
        return {
            "device_id": system.get("myID"),
            "version": version.get("version"),
            "os": version.get("os"),
            "arch": version.get("arch"),
            "started_at": system.get("startTime"),
            "uptime_seconds": system.get("uptime"),
        }

    async def folders(self, params: NoParams, progress: Progress) -> JsonValue:
        key = self._key()
        configured = await self._call(key, "GET", "/rest/config/folders")
        if not isinstance(configured, list):
            raise _unexpected("/rest/config/folders")
        folders: list[JsonValue] = []
        for entry in configured:
            folder = _object(entry, "/rest/config/folders")
            folder_id = folder.get("id")
            try:
                answer = await self._call(key, "GET", "/rest/db/status", {"folder": folder_id}, not_found="")
                state = _object(answer, "/rest/db/status").get("state")
            except CommandFailed as failure:
                if failure.code != "SYNCTHING_NOT_FOUND":
                    raise
                state = "unknown"  # removed between the two calls
            folders.append(
                {
                    "id": folder_id,
                    "label": folder.get("label"),
                    "path": folder.get("path"),
                    "type": folder.get("type"),
                    "paused": folder.get("paused"),
                    "state": state,
                }
            )
        return {"folders": folders}

    async def rescan(self, params: FolderParams, progress: Progress) -> JsonValue:
        query = {"folder": params.folder_id}
        if params.sub_path is not None:
            query["sub"] = params.sub_path
        await self._call(
            self._key(),
            "POST",
            "/rest/db/scan",
            query,
            not_found=f"SyncThing has no folder {params.folder_id!r}",
        )
        return {"folder_id": params.folder_id, "sub_path": params.sub_path, "rescan": "requested"}

    async def pause(self, params: DeviceParams, progress: Progress) -> JsonValue:
        return await self._set_paused(params.device_id, paused=True)

    async def resume(self, params: DeviceParams, progress: Progress) -> JsonValue:
        return await self._set_paused(params.device_id, paused=False)

    async def _set_paused(self, device_id: str, *, paused: bool) -> JsonValue:
        path = "/rest/system/pause" if paused else "/rest/system/resume"
        await self._call(
            self._key(),
            "POST",
            path,
            {"device": device_id},
            not_found=f"SyncThing knows no device {device_id}",
        )
        return {"device_id": device_id, "paused": paused}

    def _key(self) -> SecretValue:
        """The API key as the vault holds it now: read once per command."""
        key = resolve(self._secrets, self._api_key)
        # Checked here: an HTTP library refusing it as a header would quote it in its error.
        if not _API_KEY.fullmatch(key.reveal()):
            raise CommandFailed(
                "CREDENTIAL_INVALID",
                f"the vault entry {self._api_key} is not a SyncThing API key (empty, or it holds spaces "
                "or control characters)",
            )
        return key

    async def _call(
        self,
        key: SecretValue,
        method: str,
        path: str,
        query: dict[str, Any] | None = None,
        *,
        not_found: str | None = None,
    ) -> Any:
        """One request with ``key``; the decoded JSON body (``None`` when empty)."""
        try:
            response = await self._client.request(
                method, path, params=query, headers={"X-API-Key": key.reveal()}
            )
        except httpx.TransportError as error:
            raise CommandFailed(
                "SYNCTHING_UNREACHABLE",
                f"SyncThing at {self._url} cannot be reached: {_http.transport_problem(error)}",
            ) from None
        status = response.status_code
        if status in (401, 403):
            raise CommandFailed(
                "SYNCTHING_AUTH_FAILED",
                f"SyncThing at {self._url} refused the API key in {self._api_key} ({status}); store the key "
                f"of its GUI settings with `botmox-agent vault set {self._api_key.name}`",
            )
        text = response.text.replace(key.reveal(), str(key)) if key else response.text
        if not_found is not None and (status == 404 or "no such folder" in text.lower()):
            raise CommandFailed("SYNCTHING_NOT_FOUND", not_found)
        if status >= 400:
            logger.info("syncthing refused a request", extra={"path": path, "status": status})
            raise CommandFailed(
                "SYNCTHING_ERROR", f"SyncThing answered {status} to {path}: {_http.short(text)}"
            )
        if not response.content:
            return None
        try:
            return response.json()
        except ValueError:
            raise CommandFailed(
                "SYNCTHING_ERROR", f"SyncThing answered {path} with something not JSON"
            ) from None


def _object(value: Any, path: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise _unexpected(path)
    return value


def _unexpected(path: str) -> CommandFailed:
    return CommandFailed("SYNCTHING_ERROR", f"SyncThing answered {path} with an unexpected document")
