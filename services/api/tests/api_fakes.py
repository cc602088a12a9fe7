"""An in-memory store set (the application's ``StoreSet`` of memory stores): the test seam for
tests about the HTTP layer (auth, CORS, rate limit, errors) that do not need a real backend.
Contract tests use the real stores (``conftest.py``)."""

from __future__ import annotations

import copy
import json
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta

from botmox_api.agents import (
    AgentCommand,
    AgentInfo,
    AgentRefused,
    Pairing,
    RegisteredAgent,
    Revocation,
)
from botmox_api.model import (
    DEFAULT_OPERATIONAL,
    DEFAULT_SYNC_ENABLED,
    DataBackend,
    IfMatch,
    JsonObject,
    JsonValue,
    Readiness,
    StoragePolicy,
    StoragePolicyChanges,
    StoreError,
    VersionConflict,
)
from botmox_api.stores.protocols import StoreSet

UP = Readiness(True)
Probe = Callable[[], Awaitable[Readiness]]


def _prune(value: JsonValue) -> JsonValue:
    """The RTDB way: null members removed, empty objects and arrays vanish."""
    if isinstance(value, dict):
        pruned = {k: _prune(v) for k, v in value.items()}
        return {k: v for k, v in pruned.items() if v is not None} or None
    if isinstance(value, list):
        items = [_prune(v) for v in value]
        return items if any(v is not None for v in items) else None
    return value


@dataclass
class MemorySettingsStore:
    backend: DataBackend = "rtdb"
    trees: dict[str, JsonObject] = field(default_factory=dict)
    failure: StoreError | None = None
    readiness: Readiness = UP
    probe: Probe | None = None

    async def read_tree(self, tenant_id: str) -> JsonObject:
        if self.failure:
            raise self.failure
        return copy.deepcopy(self.trees.get(tenant_id, {}))

    async def read(self, tenant_id: str, path: tuple[str, ...]) -> JsonValue:
        node: JsonValue = await self.read_tree(tenant_id)
        for segment in path:
            node = node.get(segment) if isinstance(node, dict) else None
        return node

    async def write(
        self, tenant_id: str, path: tuple[str, ...], body: JsonValue, *, updated_at: int
    ) -> JsonValue:
        if self.failure:
            raise self.failure
        current = await self.read(tenant_id, path)
        if isinstance(body, dict):
            merged = dict(current) if isinstance(current, dict) else {}
            merged.update(body)
            merged["updated_at"] = updated_at
            new: JsonValue = _prune(merged)
        else:
            new = _prune(body)
        tree: JsonObject = self.trees.setdefault(tenant_id, {})
        parent: JsonObject = tree
        for segment in path[:-1]:
            child = parent.get(segment)
            if not isinstance(child, dict):
                child = parent[segment] = {}
            parent = child
        if new is None:
            parent.pop(path[-1], None)
        else:
            parent[path[-1]] = new
        pruned = _prune(tree)
        self.trees[tenant_id] = pruned if isinstance(pruned, dict) else {}
        return await self.read(tenant_id, path)

    async def check_ready(self) -> Readiness:
        return await self.probe() if self.probe is not None else self.readiness

    async def aclose(self) -> None:
        return None


@dataclass
class MemoryStoragePolicyStore:
    backend: DataBackend = "rtdb"
    policies: dict[str, StoragePolicy] = field(default_factory=dict)
    failure: StoreError | None = None
    readiness: Readiness = UP
    probe: Probe | None = None

    async def read(self, tenant_id: str, *, uid: str | None = None) -> StoragePolicy | None:
        if self.failure:
            raise self.failure
        return self.policies.get(tenant_id)

    async def _write(
        self,
        tenant_id: str,
        changes: StoragePolicyChanges,
        base: StoragePolicy | None,
        updated_by: str,
        if_match: IfMatch | None,
    ) -> StoragePolicy:
        if self.failure:
            raise self.failure
        current = self.policies.get(tenant_id)
        if if_match is not None and not if_match.matches(current.version if current else None):
            raise VersionConflict(self.backend, current.version if current else None)
        operational = changes.operational or (base.operational if base else DEFAULT_OPERATIONAL)
        sync_enabled = changes.sync_enabled
        if sync_enabled is None:
            sync_enabled = base.sync_enabled if base else DEFAULT_SYNC_ENABLED
        policy = StoragePolicy(
            operational, sync_enabled, 1_700_000_000_000, updated_by, (current.version + 1) if current else 1
        )
        self.policies[tenant_id] = policy
        return policy

    async def replace(
        self,
        tenant_id: str,
        changes: StoragePolicyChanges,
        *,
        updated_by: str,
        if_match: IfMatch | None = None,
    ) -> StoragePolicy:
        return await self._write(tenant_id, changes, None, updated_by, if_match)

    async def merge(
        self,
        tenant_id: str,
        changes: StoragePolicyChanges,
        *,
        updated_by: str,
        if_match: IfMatch | None = None,
    ) -> StoragePolicy:
        return await self._write(tenant_id, changes, self.policies.get(tenant_id), updated_by, if_match)

    async def check_ready(self) -> Readiness:
        return await self.probe() if self.probe is not None else self.readiness

    async def aclose(self) -> None:
        return None


# The allowlist of botmox.agent_command_kinds() (docs/contracts/agents-sql.md).
COMMAND_KINDS = frozenset(
    {
        "syncthing.status",
        "syncthing.folders.list",
        "syncthing.folder.rescan",
        "syncthing.device.pause",
        "syncthing.device.resume",
        "proxmox.nodes.list",
        "proxmox.vms.list",
        "proxmox.vm.status",
        "proxmox.vm.start",
        "proxmox.vm.stop",
        "proxmox.vm.clone",
    }
)
NOW = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)


@dataclass
class _StoredAgent:
    info: AgentInfo
    tenant_id: str
    credential_hash: bytes
    online: bool = False
    revoked_by: str | None = None


@dataclass
class MemoryAgentStore:
    """The agents SQL's rules in memory (``docs/contracts/agents-sql.md``), refusals with the same
    SQLSTATEs: enough for the HTTP layer's tests. The SQL store itself is tested on PostgreSQL."""

    backend: DataBackend = "supabase"
    failure: StoreError | None = None
    pairings: dict[bytes, tuple[str, str, datetime, bool]] = field(default_factory=dict)
    agents: dict[str, _StoredAgent] = field(default_factory=dict)
    commands: dict[str, tuple[str, AgentCommand]] = field(default_factory=dict)
    calls: list[str] = field(default_factory=list)

    def _check(self, name: str) -> None:
        self.calls.append(name)
        if self.failure:
            raise self.failure

    async def create_pairing(self, tenant_id: str, *, uid: str, code_hash: bytes) -> Pairing:
        self._check("create_pairing")
        assert len(code_hash) == 32
        self.pairings[code_hash] = (tenant_id, uid, NOW + timedelta(minutes=10), False)
        return Pairing(pairing_id=str(uuid.uuid4()), expires_at=NOW + timedelta(minutes=10))

    def expire(self, code_hash: bytes) -> None:
        tenant_id, uid, _, used = self.pairings[code_hash]
        self.pairings[code_hash] = (tenant_id, uid, NOW - timedelta(seconds=1), used)

    async def register(
        self,
        *,
        code_hash: bytes,
        credential_hash: bytes,
        name: str,
        version: str,
        capabilities: tuple[str, ...],
    ) -> RegisteredAgent:
        self._check("register")
        if any(kind not in COMMAND_KINDS for kind in capabilities):
            raise AgentRefused(
                "BM422", "capabilities must be a JSON array of distinct allowlisted command kinds"
            )
        pairing = self.pairings.get(code_hash)
        if pairing is None or pairing[3] or pairing[2] <= NOW:
            raise AgentRefused("BM401", "agent pairing code refused", "unknown, expired or already used")
        tenant_id, uid, expires_at, _ = pairing
        self.pairings[code_hash] = (tenant_id, uid, expires_at, True)
        info = AgentInfo(str(uuid.uuid4()), name, version, capabilities, uid, NOW, None, None, False)
        self.agents[info.agent_id] = _StoredAgent(info, tenant_id, credential_hash)
        return RegisteredAgent(info.agent_id, tenant_id, name, version, capabilities, NOW)

    def connect(self, agent_id: str) -> None:
        """What the tunnel's connect and heartbeat would record."""
        stored = self.agents[agent_id]
        stored.online = True
        stored.info = replace(stored.info, last_seen_at=NOW)

    def _agent(self, tenant_id: str, agent_id: uuid.UUID) -> _StoredAgent:
        stored = self.agents.get(str(agent_id))
        if stored is None or stored.tenant_id != tenant_id:
            raise AgentRefused("BM404", "agent not found", "no such agent in this tenant")
        return stored

    async def list_agents(self, tenant_id: str, *, uid: str, online_within_s: int) -> list[AgentInfo]:
        self._check("list_agents")
        return [
            replace(a.info, online=a.online and a.info.revoked_at is None)
            for a in self.agents.values()
            if a.tenant_id == tenant_id
        ]

    async def revoke(self, tenant_id: str, *, uid: str, agent_id: uuid.UUID) -> Revocation:
        self._check("revoke")
        stored = self._agent(tenant_id, agent_id)
        if stored.info.revoked_at is not None and stored.revoked_by is not None:
            return Revocation(str(agent_id), stored.info.revoked_at, stored.revoked_by, 0)
        stored.info = replace(stored.info, revoked_at=NOW)
        stored.revoked_by = uid
        stored.online = False
        cancelled = 0
        for command_id, (tenant, command) in list(self.commands.items()):
            if command.agent_id == str(agent_id) and command.status in ("queued", "sent", "acked", "running"):
                self.commands[command_id] = (
                    tenant,
                    replace(command, status="cancelled", error_code="AGENT_REVOKED", error_message="revoked"),
                )
                cancelled += 1
        return Revocation(str(agent_id), NOW, uid, cancelled)

    async def enqueue_command(
        self,
        tenant_id: str,
        *,
        uid: str,
        agent_id: uuid.UUID,
        kind: str,
        params: JsonObject,
        deadline_s: int,
        online_within_s: int,
    ) -> AgentCommand:
        self._check("enqueue_command")
        stored = self._agent(tenant_id, agent_id)
        if stored.info.revoked_at is not None:
            raise AgentRefused("BM410", "agent revoked")
        if kind not in COMMAND_KINDS:
            raise AgentRefused("BM422", "unknown command kind")
        if kind not in stored.info.capabilities:
            raise AgentRefused("BM422", "command kind not among the agent's capabilities")
        if len(json.dumps(params)) > 16 * 1024:
            raise AgentRefused("BM422", "command params must be a JSON object of at most 16 KiB")
        if not stored.online:
            seen = stored.info.last_seen_at
            raise AgentRefused(
                "BM503", "agent offline", f"last_seen_at={seen.isoformat() if seen else 'never'}"
            )
        command = AgentCommand(
            str(uuid.uuid4()),
            str(agent_id),
            kind,
            params,
            "queued",
            NOW + timedelta(seconds=deadline_s),
            0,
            None,
            None,
            None,
            None,
            uid,
            NOW,
            None,
        )
        self.commands[command.command_id] = (tenant_id, command)
        return command

    async def read_command(
        self, tenant_id: str, *, uid: str, agent_id: uuid.UUID, command_id: uuid.UUID
    ) -> AgentCommand | None:
        self._check("read_command")
        found = self.commands.get(str(command_id))
        if found is None or found[0] != tenant_id or found[1].agent_id != str(agent_id):
            return None
        return found[1]

    async def cancel_command(
        self, tenant_id: str, *, uid: str, agent_id: uuid.UUID, command_id: uuid.UUID
    ) -> AgentCommand:
        self._check("cancel_command")
        found = await self.read_command(tenant_id, uid=uid, agent_id=agent_id, command_id=command_id)
        if found is None:
            raise AgentRefused("BM404", "command not found", "no such command in this tenant")
        if found.status in ("succeeded", "failed", "expired", "cancelled"):
            raise AgentRefused(
                "BM409", "command status transition refused", f"status={found.status},to=cancelled"
            )
        cancelled = replace(
            found,
            status="cancelled",
            error_code="CANCELLED",
            error_message=f"cancelled by {uid}",
            finished_at=NOW,
        )
        self.commands[cancelled.command_id] = (tenant_id, cancelled)
        return cancelled

    async def check_ready(self) -> Readiness:
        return UP

    async def aclose(self) -> None:
        return None


def memory_store_set(
    *,
    supabase_configured: bool = True,
    rtdb_configured: bool = True,
    supabase_readiness: Readiness = UP,
    rtdb_readiness: Readiness = UP,
    shadow: bool = False,
) -> StoreSet:
    """The application's ``StoreSet`` on memory stores. ``storage_policy`` is an RTDB-like store;
    ``supabase`` is a store of its own, there for its readiness and, with ``shadow``, as the store
    shadow reads compare with (as the factory builds it in ``rtdb`` mode)."""
    supabase = MemoryStoragePolicyStore(backend="supabase", readiness=supabase_readiness)
    return StoreSet(
        settings=MemorySettingsStore(readiness=rtdb_readiness),
        storage_policy=MemoryStoragePolicyStore(),
        supabase=supabase,
        supabase_configured=supabase_configured,
        rtdb_configured=rtdb_configured,
        shadow=supabase if shadow else None,
        agents=MemoryAgentStore(),
    )
