"""Tenant isolation through the API on the real stores.

A seeded random sequence of writes and reads by several tenants (user JWTs with different
``app_metadata.tenant_id``) against a per-tenant model: every read answers the caller's own data,
and at the end each tenant's whole tree equals its model, in both modes and over both Supabase
transports (``supabase-rest``: each call's minted token carries its own tenant). Then the
application's tenant check is bypassed on purpose (a SQL store that declares the caller's tenant but
asks for another tenant's row): the database still refuses (RLS hides the row, the functions refuse
the other tenant), the API answers 502 and the row is unchanged.
"""

from __future__ import annotations

import dataclasses
import random
from dataclasses import dataclass, field
from typing import Any, Final

import httpx
import pytest
from api_support import REST_MODES, client_for, data, error_code, make_settings, user

from botmox_api.model import IfMatch, StoragePolicy, StoragePolicyChanges
from botmox_api.stores.factory import build_stores
from botmox_api.stores.supabase_sql import SqlStoragePolicyStore
from harness.postgres.migrated import PgDatabase
from harness.rtdb.process import RtdbEmulatorProcess

TENANTS: Final = ("iso-a", "iso-b", "iso-c")
SEED: Final = 20261125
STEPS: Final = 60
GENERIC_NODES: Final = ("alerts", "notes")


@pytest.fixture(params=REST_MODES)
def api_mode(request: pytest.FixtureRequest) -> str:
    return str(request.param)


CHILD_KEYS: Final = ("k0", "k1", "k2", "k3")


@dataclass
class TenantModel:
    """What one tenant should see: the storage policy fields and the generic nodes' children."""

    policy: dict[str, Any] | None = None
    nodes: dict[str, dict[str, Any]] = field(default_factory=dict)

    def policy_view(self) -> dict[str, Any] | None:
        return None if self.policy is None else dict(self.policy)


def _policy_view(document: Any) -> dict[str, Any] | None:
    """The comparable part of a storage_policy document (server-set fields dropped)."""
    if document is None:
        return None
    assert document["secrets"] == "local-only"
    return {
        "operational": document["operational"],
        "sync": document["sync"],
        "updated_by": document["updated_by"],
    }


def _node_view(node: Any) -> dict[str, Any]:
    assert isinstance(node, dict), node
    return {key: value for key, value in node.items() if key != "updated_at"}


def _headers(tenant: str) -> dict[str, str]:
    return user(tenant, sub=f"{tenant}-user")


async def _write_policy(
    client: httpx.AsyncClient, rng: random.Random, tenant: str, model: TenantModel
) -> None:
    method = rng.choice(("PUT", "PATCH"))
    body: dict[str, Any] = {}
    if rng.random() < 0.7:
        body["operational"] = rng.choice(("local", "cloud"))
    if rng.random() < 0.7 or not body:
        body["sync"] = {"enabled": rng.choice((True, False))}
    response = await client.request(
        method, "/api/v1/settings/storage_policy", json=body, headers=_headers(tenant)
    )
    assert response.status_code == 200, response.text
    base = {"operational": "cloud", "sync": {"enabled": False}}
    if method == "PATCH" and model.policy is not None:
        base = {"operational": model.policy["operational"], "sync": dict(model.policy["sync"])}
    if "operational" in body:
        base["operational"] = body["operational"]
    if "sync" in body:
        base["sync"] = dict(body["sync"])
    model.policy = {**base, "updated_by": f"{tenant}-user"}
    assert _policy_view(data(response)) == model.policy_view()


async def _write_node(client: httpx.AsyncClient, rng: random.Random, tenant: str, model: TenantModel) -> None:
    node = rng.choice(GENERIC_NODES)
    body = {key: f"{tenant}:{rng.randrange(1000)}" for key in rng.sample(CHILD_KEYS, rng.randint(1, 2))}
    method = rng.choice(("PUT", "PATCH"))
    response = await client.request(method, f"/api/v1/settings/{node}", json=body, headers=_headers(tenant))
    assert response.status_code == 200, response.text
    model.nodes.setdefault(node, {}).update(body)
    assert _node_view(data(response)) == model.nodes[node]


async def _read_back(client: httpx.AsyncClient, rng: random.Random, tenant: str, model: TenantModel) -> None:
    which = rng.choice(("policy", "node", "tree"))
    if which == "policy":
        response = await client.get("/api/v1/settings/storage_policy", headers=_headers(tenant))
        assert response.status_code == 200, response.text
        assert _policy_view(data(response)) == model.policy_view()
    elif which == "node":
        node = rng.choice(GENERIC_NODES)
        response = await client.get(f"/api/v1/settings/{node}", headers=_headers(tenant))
        assert response.status_code == 200, response.text
        expected = model.nodes.get(node)
        assert (data(response) is None) if expected is None else (_node_view(data(response)) == expected)
    else:
        await _assert_tree(client, tenant, model)


async def _assert_tree(client: httpx.AsyncClient, tenant: str, model: TenantModel) -> None:
    response = await client.get("/api/v1/settings", headers=_headers(tenant))
    assert response.status_code == 200, response.text
    tree = data(response)
    assert _policy_view(tree.get("storage_policy")) == model.policy_view()
    others = {key: _node_view(value) for key, value in tree.items() if key != "storage_policy"}
    assert others == model.nodes


async def test_random_tenant_traffic_only_ever_sees_its_own_data(api: httpx.AsyncClient) -> None:
    rng = random.Random(SEED)
    models = {tenant: TenantModel() for tenant in TENANTS}
    actions = (_write_policy, _write_node, _read_back)
    for _ in range(STEPS):
        tenant = rng.choice(TENANTS)
        action = rng.choice(actions)
        await action(api, rng, tenant, models[tenant])
    for tenant, model in models.items():
        await _assert_tree(api, tenant, model)
    # The sequence really wrote something for each tenant, so "sees only its own" was tested.
    assert all(model.policy is not None and model.nodes for model in models.values())


# -- RLS holds when the application errs ------------------------------------------------------


class CrossTenantSqlStore(SqlStoragePolicyStore):
    """The bug RLS must contain: declares the caller's tenant to RLS (``request.jwt.claims``) but
    passes another tenant's id to the storage-policy functions."""

    def __init__(self, dsn: str, victim: str) -> None:
        super().__init__(dsn)
        self.victim = victim
        self._caller: str | None = None

    def _declared_tenant(self, tenant_id: str) -> str:
        assert self._caller is not None
        return self._caller

    def _aim(self, tenant_id: str) -> str:
        self._caller = tenant_id
        return self.victim

    async def read(self, tenant_id: str, *, uid: str | None = None) -> StoragePolicy | None:
        return await super().read(self._aim(tenant_id), uid=uid)

    async def replace(
        self,
        tenant_id: str,
        changes: StoragePolicyChanges,
        *,
        updated_by: str,
        if_match: IfMatch | None = None,
    ) -> StoragePolicy:
        return await super().replace(self._aim(tenant_id), changes, updated_by=updated_by, if_match=if_match)

    async def merge(
        self,
        tenant_id: str,
        changes: StoragePolicyChanges,
        *,
        updated_by: str,
        if_match: IfMatch | None = None,
    ) -> StoragePolicy:
        return await super().merge(self._aim(tenant_id), changes, updated_by=updated_by, if_match=if_match)


VICTIM: Final = "iso-victim"
INTRUDER: Final = "iso-intruder"


@pytest.fixture
def supabase_overrides(
    rtdb_emulator: RtdbEmulatorProcess, rtdb_namespace: str, pg_database: PgDatabase
) -> dict[str, Any]:
    return {
        "data_backend": "supabase",
        "supabase_db_url": pg_database.api_dsn,
        "firebase_database_url": f"https://{rtdb_namespace}.firebaseio.com",
        "firebase_database_emulator_host": rtdb_emulator.host,
    }


@pytest.mark.parametrize("method", ["PUT", "PATCH"])
async def test_rls_refuses_a_cross_tenant_query_through_the_api(
    supabase_overrides: dict[str, Any], pg_database: PgDatabase, method: str
) -> None:
    settings = make_settings(**supabase_overrides)
    async with client_for(settings) as honest:
        stored = await honest.put(
            "/api/v1/settings/storage_policy", json={"operational": "local"}, headers=_headers(VICTIM)
        )
        assert stored.status_code == 200, stored.text
        victim_before = data(stored)
        etag = stored.headers["ETag"]

    real = build_stores(
        data_backend="supabase",
        supabase_db_url=pg_database.api_dsn,
        firebase_database_url=supabase_overrides["firebase_database_url"],
        firebase_database_emulator_host=supabase_overrides["firebase_database_emulator_host"],
    )
    await real.storage_policy.aclose()  # replaced below; closing an unopened pool is a no-op
    buggy = CrossTenantSqlStore(pg_database.api_dsn, victim=VICTIM)
    stores = dataclasses.replace(real, storage_policy=buggy, supabase=buggy)
    async with client_for(settings, stores) as intruder:
        seen = await intruder.get("/api/v1/settings/storage_policy", headers=_headers(INTRUDER))
        assert seen.status_code == 200, seen.text
        assert data(seen) is None  # RLS hides the victim's row from the intruder's declared tenant
        # The functions refuse a p_tenant_id that is not the declared tenant (SQLSTATE 42501) -> 502,
        # with or without a precondition, so nothing about the victim's row leaks.
        for if_match, status, code in (
            (None, 502, "SUPABASE_QUERY_FAILED"),
            (etag, 502, "SUPABASE_QUERY_FAILED"),
            ("*", 502, "SUPABASE_QUERY_FAILED"),
        ):
            headers = _headers(INTRUDER) | ({"If-Match": if_match} if if_match else {})
            write = await intruder.request(
                method,
                "/api/v1/settings/storage_policy",
                json={"operational": "cloud", "sync": {"enabled": True}},
                headers=headers,
            )
            assert write.status_code == status, write.text
            assert error_code(write) == code
            if status == 412:
                assert write.json()["error"]["details"] == {"current_version": None}

    async with client_for(settings) as honest:
        after = await honest.get("/api/v1/settings/storage_policy", headers=_headers(VICTIM))
        assert after.status_code == 200, after.text
        assert data(after) == victim_before
        assert after.headers["ETag"] == etag
