"""locust scenarios against a harness stack (``loadtests/README.md``).

The URL and the JWT secret come from the harness state file (``.harness/state.json``); each tenant
gets one HS256 token minted the way ``python -m harness token`` mints the demo tenant's. Users are
chosen on locust's command line by class name: ``StoragePolicyUser``, ``SettingsUser``, ``FrontendUser``.

Bounded: locust is always run with ``--run-time``; every user waits or paces between tasks.
412 answers to a write with a stale ``If-Match`` are successes counted apart (``extras.json``).
"""

from __future__ import annotations

import csv
import itertools
import json
import os
import random
from collections import Counter
from pathlib import Path
from typing import Any

from locust import FastHttpUser, between, constant_pacing, events, task
from locust.stats import PERCENTILES_TO_REPORT, StatsCSV

from harness.stack.state import HarnessPaths, load
from harness.stack.tokens import demo_token

API = "/api/v1"
POLICY = f"{API}/settings/storage_policy"
TENANTS = int(os.environ.get("LOAD_TENANTS", "200"))
# What the settings page refetches each round (services/frontend), in its order.
PAGE_PATHS = ("api_keys", "proxy", "notifications/events", "alerts", "theme", "projects", "storage_policy")
ROUNDS_PER_SECOND = 10.0

CONFLICTS: Counter[str] = Counter()
_TABS = itertools.count()


def _tokens() -> list[str]:
    state = load(HarnessPaths.default())
    if state is None:
        raise SystemExit("no harness stack: run `python -m harness up --detach --runtime native` first")
    return [
        demo_token(
            secret=state.jwt_secret,
            audience=state.jwt_audience,
            issuer=state.jwt_issuer,
            tenant_id=f"load-{index:04d}",
        )
        for index in range(TENANTS)
    ]


TOKENS = _tokens()


def _auth(token: str, **extra: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}", **extra}


def _etag(response: Any) -> str | None:
    """The ``ETag`` of a response (None when there is none: a tenant with no policy stored yet)."""
    value = response.headers.get("ETag") if response.headers is not None else None
    return value if isinstance(value, str) else None


def _policy_body() -> dict[str, Any]:
    return {"operational": random.choice(("local", "cloud")), "sync": {"enabled": random.random() < 0.5}}


class _Base(FastHttpUser):
    abstract = True

    def _write_policy(self, method: str, name: str, token: str, etag: str | None) -> None:
        """A write with ``If-Match``; one in ten sends a stale tag on purpose, and its 412 is a conflict."""
        stale = random.random() < 0.1
        headers = _auth(token)
        if stale:
            headers["If-Match"] = '"999999999"'
        elif etag is not None:
            headers["If-Match"] = etag
        call = self.client.put if method == "PUT" else self.client.patch
        with call(POLICY, json=_policy_body(), headers=headers, name=name, catch_response=True) as response:
            if response.status_code == 412 and (stale or etag is not None):
                CONFLICTS[name] += 1
                response.success()
            elif response.status_code != 200:
                response.failure(f"{response.status_code}")


class StoragePolicyUser(_Base):
    """Mostly reads of the storage policy, over many tenants; writes with ``If-Match``."""

    wait_time = between(0.0, 0.01)

    def _tenant(self) -> str:
        return random.choice(TOKENS)

    @task(8)
    def get_policy(self) -> None:
        self.client.get(POLICY, headers=_auth(self._tenant()), name="GET storage_policy")

    @task(1)
    def put_policy(self) -> None:
        self._write_policy("PUT", "PUT storage_policy", self._tenant(), None)

    @task(1)
    def patch_policy(self) -> None:
        token = self._tenant()
        response = self.client.get(POLICY, headers=_auth(token), name="GET storage_policy")
        self._write_policy("PATCH", "PATCH storage_policy", token, _etag(response))


class SettingsUser(_Base):
    """The generic settings paths: the whole tree, leaves read, written and merged."""

    wait_time = between(0.0, 0.01)
    PATHS = ("api_keys", "proxy", "notifications/events", "alerts", "theme", "projects")

    def _tenant(self) -> str:
        return random.choice(TOKENS)

    @task(6)
    def get_path(self) -> None:
        path = random.choice(self.PATHS)
        self.client.get(f"{API}/settings/{path}", headers=_auth(self._tenant()), name="GET settings/<path>")

    @task(1)
    def get_tree(self) -> None:
        self.client.get(f"{API}/settings", headers=_auth(self._tenant()), name="GET settings")

    @task(1)
    def put_path(self) -> None:
        body = {"mode": random.choice(("light", "dark")), "accent": f"#{random.randrange(16**6):06x}"}
        self.client.put(
            f"{API}/settings/theme", json=body, headers=_auth(self._tenant()), name="PUT settings/<path>"
        )

    @task(1)
    def patch_path(self) -> None:
        body = {"enabled": random.random() < 0.5, "timeout_s": random.randrange(1, 60)}
        self.client.patch(
            f"{API}/settings/proxy", json=body, headers=_auth(self._tenant()), name="PATCH settings/<path>"
        )


class FrontendUser(_Base):
    """One open tab of the Bot-Mox settings page: one tenant, ~10 rounds of 7 GETs a second."""

    wait_time = constant_pacing(1.0 / ROUNDS_PER_SECOND)

    def on_start(self) -> None:
        self.token = TOKENS[next(_TABS) % len(TOKENS)]
        self.client.get(f"{API}/auth/verify", headers=_auth(self.token), name="GET auth/verify")
        tree = self.client.get(
            f"{API}/settings/ui/resource_tree",
            headers=_auth(self.token),
            name="GET settings/ui/resource_tree",
        )
        written = tree.json().get("data") if tree.status_code == 200 and tree.text else None
        self.client.put(
            f"{API}/settings/ui/resource_tree",
            json=written if isinstance(written, dict) else {"expanded": ["settings"]},
            headers=_auth(self.token),
            name="PUT settings/ui/resource_tree",
        )

    @task(30)
    def round(self) -> None:
        for path in PAGE_PATHS:
            self.client.get(f"{API}/settings/{path}", headers=_auth(self.token), name=f"GET {path}")

    @task(1)
    def save(self) -> None:
        current = self.client.get(POLICY, headers=_auth(self.token), name="GET storage_policy (save)")
        document = current.json().get("data") if current.status_code == 200 else None
        if not isinstance(document, dict):
            document = _policy_body()
        document["operational"] = random.choice(("local", "cloud"))
        etag = _etag(current)
        headers = _auth(self.token, **({"If-Match": etag} if etag else {}))
        with self.client.put(
            POLICY, json=document, headers=headers, name="PUT storage_policy (save)", catch_response=True
        ) as response:
            if response.status_code == 412:
                CONFLICTS["PUT storage_policy (save)"] += 1
                response.success()
            elif response.status_code != 200:
                response.failure(f"{response.status_code}")


@events.quitting.add_listener  # type: ignore[untyped-decorator]
def _write_extras(environment: Any, **_kwargs: Any) -> None:
    """The 412 conflicts next to the CSV (``LOAD_EXTRAS``), for the runner's table."""
    target = os.environ.get("LOAD_EXTRAS")
    if not target:
        return
    runtime = (
        environment.runner.stats.total.last_request_timestamp - environment.runner.stats.total.start_time
    )
    Path(target).write_text(
        json.dumps(
            {
                "conflicts": dict(CONFLICTS),
                "seconds": max(runtime or 0.0, 0.0),
                "users": environment.parsed_options.num_users if environment.parsed_options else None,
            }
        )
    )


@events.quitting.add_listener  # type: ignore[untyped-decorator]
def _write_final_stats(environment: Any, **_kwargs: Any) -> None:
    """The run's final figures (``LOAD_FINAL_STATS``), in the columns of ``*_stats.csv``: locust
    rewrites that file once a second while the run lasts, never at its end, so it misses the last
    second (all of a run whose users started late)."""
    target = os.environ.get("LOAD_FINAL_STATS")
    if not target:
        return
    with Path(target).open("w", newline="") as handle:
        StatsCSV(environment, PERCENTILES_TO_REPORT).requests_csv(csv.writer(handle))
