"""The Proxmox VE kinds, through its HTTP API (``/api2/json``) with an API token from the vault.

Each command names its host by a vault entry (``_proxmox_credential``), read for every command; the
token goes only into the ``Authorization`` header. Start, stop and clone answer with a task id (UPID)
at once; the command then follows the task until it stops, reporting progress, for at most the
command's remaining time (``_deadline``). Proxmox VE puts its error text in the HTTP reason phrase
(and, in recent versions, in a ``message`` field): 401 is a refused token, 403 a missing privilege,
404 or 500 "... does not exist" / "no such cluster node" a missing VM or node, 595 a node of the
cluster it cannot reach.
"""

from __future__ import annotations

import asyncio
import logging
import re
import ssl
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final
from urllib.parse import quote

import httpx
from pydantic import JsonValue

from botmox_agent.executors import _http
from botmox_agent.executors._contract import CommandFailed, Progress, SecretResolver
from botmox_agent.executors._deadline import remaining_seconds
from botmox_agent.executors._handlers import Handlers, handler
from botmox_agent.executors._proxmox_credential import ProxmoxHost, parse_host
from botmox_agent.executors._secrets import resolve
from botmox_agent.executors._settings import ExecutorSettings
from botmox_agent.vault import InvalidSecretName, SecretRef
from botmox_protocol.kinds import ProxmoxCloneParams, ProxmoxNodeParams, ProxmoxParams, ProxmoxVmParams

logger: Final = logging.getLogger("botmox_agent.executors.proxmox")

API_PATH: Final = "/api2/json"
# UPID:<node>:<pid>:<pstart>:<starttime>:<type>:<id>:<user>: (pve-common's PVE::Tools::upid_decode).
_UPID: Final = re.compile(
    r"^UPID:(?P<node>[A-Za-z0-9](?:[A-Za-z0-9-]*)):(?:[0-9A-Fa-f]+:){3}(?P<type>[^:/?#\s]*):[^/?#\s]*$"
)
# Consecutive polls of a task that may fail to reach Proxmox before the command fails.
_POLLS_LOST_AT_MOST: Final = 3
# How PVE words a 500 for something missing: a VM's config file, a node of the cluster.
_MISSING: Final = ("does not exist", "no such cluster node", "no such node")
_NODE_FIELDS: Final = ("node", "status", "cpu", "maxcpu", "mem", "maxmem", "uptime")
_VM_FIELDS: Final = ("vmid", "name", "status", "cpus", "maxmem", "uptime")
_STATUS_FIELDS: Final = ("vmid", "name", "status", "qmpstatus", "uptime", "cpus", "maxmem", "mem", "lock")


class ProxmoxExecutor:
    """The six ``proxmox.*`` kinds, one HTTP client per host (by URL and TLS trust)."""

    def __init__(
        self,
        settings: ExecutorSettings,
        secrets: SecretResolver,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._settings = settings
        self._secrets = secrets
        self._transport = transport
        self._clients: dict[tuple[str, bool, Path | None], httpx.AsyncClient] = {}

    def handlers(self) -> Handlers:
        return {
            "proxmox.nodes.list": handler(ProxmoxParams, self.nodes),
            "proxmox.vms.list": handler(ProxmoxNodeParams, self.vms),
            "proxmox.vm.status": handler(ProxmoxVmParams, self.vm_status),
            "proxmox.vm.start": handler(ProxmoxVmParams, self.vm_start),
            "proxmox.vm.stop": handler(ProxmoxVmParams, self.vm_stop),
            "proxmox.vm.clone": handler(ProxmoxCloneParams, self.vm_clone),
        }

    async def aclose(self) -> None:
        clients, self._clients = list(self._clients.values()), {}
        for client in clients:
            await client.aclose()

    async def nodes(self, params: ProxmoxParams, progress: Progress) -> JsonValue:
        host = self._host(params.credential)
        nodes = _objects(await self._call(host, "GET", "/nodes", missing="the cluster"), "/nodes")
        ordered = sorted(nodes, key=lambda node: str(node.get("node")))
        return {"nodes": [_pick(node, _NODE_FIELDS) for node in ordered]}

    async def vms(self, params: ProxmoxNodeParams, progress: Progress) -> JsonValue:
        host = self._host(params.credential)
        path = f"/nodes/{params.node}/qemu"
        vms = _objects(await self._call(host, "GET", path, missing=f"node {params.node}"), path)
        ordered = sorted(vms, key=lambda vm: str(vm.get("vmid")).zfill(10))
        listed: list[JsonValue] = [
            {**_pick(vm, _VM_FIELDS), "template": bool(vm.get("template"))} for vm in ordered
        ]
        return {"node": params.node, "vms": listed}

    async def vm_status(self, params: ProxmoxVmParams, progress: Progress) -> JsonValue:
        host = self._host(params.credential)
        path = f"/nodes/{params.node}/qemu/{params.vmid}/status/current"
        current = await self._call(host, "GET", path, missing=_vm(params.node, params.vmid))
        if not isinstance(current, dict):
            raise _unexpected(path)
        return {
            "node": params.node,
            **_pick(current, _STATUS_FIELDS),
            "template": bool(current.get("template")),
        }

    async def vm_start(self, params: ProxmoxVmParams, progress: Progress) -> JsonValue:
        return await self._power(params, "start", progress)

    async def vm_stop(self, params: ProxmoxVmParams, progress: Progress) -> JsonValue:
        return await self._power(params, "stop", progress)

    async def _power(self, params: ProxmoxVmParams, action: str, progress: Progress) -> JsonValue:
        host = self._host(params.credential)
        path = f"/nodes/{params.node}/qemu/{params.vmid}/status/{action}"
        upid = await self._call(host, "POST", path, missing=_vm(params.node, params.vmid))
        exitstatus = await self._follow_task(host, upid, params.node, progress)
        return {
            "node": params.node,
            "vmid": params.vmid,
            "action": action,
            "task": upid,
            "exitstatus": exitstatus,
        }

    async def vm_clone(self, params: ProxmoxCloneParams, progress: Progress) -> JsonValue:
        host = self._host(params.credential)
        form: dict[str, str] = {
            "newid": str(params.new_vmid),
            "name": params.name,
            "full": "1" if params.full else "0",
        }
        if params.target_node is not None:
            form["target"] = params.target_node
        if params.pool is not None:
            form["pool"] = params.pool
        path = f"/nodes/{params.node}/qemu/{params.template_vmid}/clone"
        upid = await self._call(host, "POST", path, form=form, missing=_vm(params.node, params.template_vmid))
        exitstatus = await self._follow_task(host, upid, params.node, progress)
        return {
            "node": params.target_node or params.node,
            "vmid": params.new_vmid,
            "name": params.name,
            "template_node": params.node,
            "template_vmid": params.template_vmid,
            "full": params.full,
            "task": upid,
            "exitstatus": exitstatus,
        }

    async def _follow_task(self, host: ProxmoxHost, upid: Any, node: str, progress: Progress) -> str:
        """Polls the task until it stops: its exit status (``OK``, ``WARNINGS: n``) or PROXMOX_TASK_FAILED."""
        match = _UPID.fullmatch(upid) if isinstance(upid, str) else None
        if match is None:
            raise CommandFailed("PROXMOX_ERROR", f"Proxmox VE at {host.url} did not answer with a task id")
        task_node, task_type = match["node"], match["type"]
        path = f"/nodes/{task_node}/tasks/{quote(upid, safe=':@!')}/status"
        loop = asyncio.get_running_loop()
        started = loop.time()
        ends = started + remaining_seconds(self._settings.proxmox_task_timeout)
        await progress(None, f"Proxmox task {task_type} started on {task_node}")
        reported = started
        lost = 0
        while True:
            try:
                task = await self._call(host, "GET", path, missing=f"task {upid}")
                lost = 0
            except CommandFailed as failure:
                # The task runs on regardless: a blip of the network is waited out, a few in a row are not.
                lost += 1
                if failure.code != "PROXMOX_UNREACHABLE" or lost >= _POLLS_LOST_AT_MOST:
                    raise CommandFailed(
                        failure.code, f"{failure.message}; task {upid} may still run on the host"
                    ) from None
                task = {"status": "running"}
            if not isinstance(task, dict):
                raise _unexpected(path)
            if task.get("status") == "stopped":
                exitstatus = task.get("exitstatus")
                if exitstatus == "OK" or (isinstance(exitstatus, str) and exitstatus.startswith("WARNINGS")):
                    return exitstatus
                logger.info("proxmox task failed", extra={"upid": upid, "node": node})
                raise CommandFailed(
                    "PROXMOX_TASK_FAILED",
                    f"Proxmox task {task_type} on {task_node} failed: "
                    f"{_http.short(str(exitstatus))} ({upid})",
                )
            now = loop.time()
            if now >= ends:
                raise CommandFailed(
                    "PROXMOX_TASK_TIMEOUT",
                    f"Proxmox task {task_type} on {task_node} still running after {now - started:.0f} s, at "
                    f"the command's deadline; it goes on on the host ({upid})",
                )
            if now - reported >= self._settings.proxmox_progress_interval:
                reported = now
                await progress(None, f"Proxmox task {task_type} running for {now - started:.0f} s")
            await asyncio.sleep(min(self._settings.proxmox_poll_interval, ends - now))

    def _host(self, credential: str) -> ProxmoxHost:
        try:
            ref = SecretRef.parse(credential)
        except InvalidSecretName:
            raise CommandFailed("CREDENTIAL_INVALID", "the credential is not a secret:// reference") from None
        return parse_host(ref, resolve(self._secrets, ref))

    def _client(self, host: ProxmoxHost) -> httpx.AsyncClient:
        ca_file = host.ca_file or self._settings.ca_file
        key = (host.url, host.verify_tls, ca_file if host.verify_tls else None)
        client = self._clients.get(key)
        if client is None:
            try:
                verify = _http.tls_trust(host.verify_tls, ca_file)
            except (OSError, ssl.SSLError):
                raise CommandFailed(
                    "CREDENTIAL_INVALID", f"the CA file {ca_file} for {host.url} cannot be read as PEM"
                ) from None
            client = _http.async_client(
                host.url + API_PATH,
                timeout=self._settings.request_timeout,
                verify=verify,
                transport=self._transport,
            )
            self._clients[key] = client
        return client

    async def _call(
        self,
        host: ProxmoxHost,
        method: str,
        path: str,
        *,
        missing: str,
        form: Mapping[str, str] | None = None,
    ) -> Any:
        """One API call; the answer's ``data``."""
        try:
            response = await self._client(host).request(
                method, path, data=form, headers={"Authorization": host.authorization()}
            )
        except httpx.TransportError as error:
            raise CommandFailed(
                "PROXMOX_UNREACHABLE",
                f"Proxmox VE at {host.url} cannot be reached: {_http.transport_problem(error)}",
            ) from None
        status = response.status_code
        if status < 400:
            try:
                document = response.json()
            except ValueError:
                raise _unexpected(path) from None
            if not isinstance(document, dict) or "data" not in document:
                raise _unexpected(path)
            return document["data"]
        problem = _problem(response, host)
        if status == 401:
            raise CommandFailed(
                "PROXMOX_AUTH_FAILED",
                f"Proxmox VE at {host.url} refused the API token {host.token_id} (401 {problem})",
            )
        if status == 403:
            raise CommandFailed(
                "PROXMOX_PERMISSION_DENIED", f"the API token {host.token_id} may not do this: {problem}"
            )
        if status == 404 or (status == 500 and any(words in problem for words in _MISSING)):
            raise CommandFailed("PROXMOX_NOT_FOUND", f"no {missing} on {host.url}: {problem}")
        if status == 595:
            raise CommandFailed(
                "PROXMOX_UNREACHABLE", f"Proxmox VE at {host.url} cannot reach a node: {problem}"
            )
        raise CommandFailed(
            "PROXMOX_ERROR", f"Proxmox VE at {host.url} answered {status} to {method} {path}: {problem}"
        )


def _problem(response: httpx.Response, host: ProxmoxHost) -> str:
    """Proxmox's error text: the reason phrase, a ``message`` and per-parameter ``errors`` if any."""
    parts = [response.reason_phrase]
    try:
        document = response.json()
    except ValueError:
        document = None
    if isinstance(document, dict):
        message = document.get("message")
        if isinstance(message, str) and message.strip() and message.strip() != response.reason_phrase.strip():
            parts.append(message)
        errors = document.get("errors")
        if isinstance(errors, dict):
            parts.extend(f"{name}: {text}" for name, text in errors.items())
    text = "; ".join(part.strip() for part in parts if part and part.strip())
    return _http.short(text.replace(host.token_secret.reveal(), str(host.token_secret)), 300)


def _vm(node: str, vmid: int) -> str:
    return f"VM {vmid} on node {node}"


def _pick(source: Mapping[str, Any], fields: tuple[str, ...]) -> dict[str, JsonValue]:
    return {field: source.get(field) for field in fields}


def _objects(value: Any, path: str) -> list[dict[str, Any]]:
    if not isinstance(value, list) or not all(isinstance(item, dict) for item in value):
        raise _unexpected(path)
    return value


def _unexpected(path: str) -> CommandFailed:
    return CommandFailed("PROXMOX_ERROR", f"Proxmox VE answered {path} with an unexpected document")
