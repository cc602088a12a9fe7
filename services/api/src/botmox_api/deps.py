"""FastAPI dependencies as ``Annotated`` aliases: routes declare what they need, nothing more.

Everything here is built once per application (``app.state``) and only looked up per request.
Each dependency is ``async def`` although it never awaits: FastAPI runs a plain ``def`` dependency
in its thread pool, a hop to another thread and back for a dictionary lookup.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from botmox_api.auth import Principal
from botmox_api.config import ApiSettings
from botmox_api.gate import required_principal
from botmox_api.readiness import ReadinessCache
from botmox_api.shadow_reads import ShadowReads
from botmox_api.stores.protocols import AgentStore, SettingsStore, StoragePolicyStore, StoreSet


async def _principal(request: Request) -> Principal:
    return required_principal(request.scope)


async def _stores(request: Request) -> StoreSet:
    stores: StoreSet = request.app.state.stores
    return stores


async def _settings_store(request: Request) -> SettingsStore:
    stores: StoreSet = request.app.state.stores
    return stores.settings


async def _storage_policy_store(request: Request) -> StoragePolicyStore:
    stores: StoreSet = request.app.state.stores
    return stores.storage_policy


async def _agent_store(request: Request) -> AgentStore:
    stores: StoreSet = request.app.state.stores
    return stores.agents


async def _shadow_reads(request: Request) -> ShadowReads | None:
    shadow: ShadowReads | None = request.app.state.shadow_reads
    return shadow


async def _readiness(request: Request) -> ReadinessCache:
    readiness: ReadinessCache = request.app.state.readiness
    return readiness


async def _api_settings(request: Request) -> ApiSettings:
    settings: ApiSettings = request.app.state.settings
    return settings


CurrentPrincipal = Annotated[Principal, Depends(_principal)]
StoreSetDep = Annotated[StoreSet, Depends(_stores)]
SettingsStoreDep = Annotated[SettingsStore, Depends(_settings_store)]
StoragePolicyStoreDep = Annotated[StoragePolicyStore, Depends(_storage_policy_store)]
AgentStoreDep = Annotated[AgentStore, Depends(_agent_store)]
ApiSettingsDep = Annotated[ApiSettings, Depends(_api_settings)]
ShadowReadsDep = Annotated[ShadowReads | None, Depends(_shadow_reads)]
ReadinessDep = Annotated[ReadinessCache, Depends(_readiness)]
