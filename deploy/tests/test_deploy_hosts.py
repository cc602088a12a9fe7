"""The deploys for real (issue 17's acceptance): a VPS and an agent host, Docker test hosts with systemd
and sshd (deploy/tests/hosts.py), deployed over SSH by ``pyinfra -y inventories/test.py deploy/vps.py``
and ``deploy/agent.py`` exactly as ops run them, then checked with testinfra, re-run with zero changes,
rolled out, rolled back, broken on purpose and watched by their Prometheus.

The VPS gets the harness's own images of the API, the frontend and PostgreSQL as ``docker save``
archives (the air-gapped path), runs them with Debian's docker.io and docker-compose 1.29 inside the
host, and keeps its data in RTDB's stand-in (deploy/tests/rtdb_standin.py) and its storage policy in
PostgreSQL (``DATA_BACKEND=supabase``, the ``db-only`` profile: Supabase's other images cannot be pulled).

``make deploy-test`` runs this module (marker ``deploy_hosts``; plain ``pytest`` leaves it out). The tests
run in file order on one deployed pair; the first fixture prints the deploys' timings.
"""

from __future__ import annotations

import contextlib
import json
import shlex
import shutil
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import testinfra  # type: ignore[import-untyped]

from deploy.tasks import layout
from deploy.tests import app_images, deploy_run
from deploy.tests.hosts import RUN_LABEL, TestHost, TestHosts
from deploy.tests.rtdb_standin import RtdbStandIn
from harness.fixtures.tools import skip_or_fail
from harness.stack.docker import daemon
from harness.stack.tokens import demo_token

SETUP_TIMEOUT_S = 2400  # a cold machine builds the base, the images, and apt-installs on the hosts
# The first test's time includes the module fixture's deploys.
pytestmark = [pytest.mark.deploy_hosts, pytest.mark.timeout(SETUP_TIMEOUT_S)]

VPS, AGENT = "vps-test", "agent-test"
DOMAIN = "botmox.test"  # inventories/test.py's domain
TENANT = "default"  # the VPS's DEFAULT_TENANT_ID: where the infra token pairs agents
CADDY_ROOT_CA = "/var/lib/caddy/.local/share/caddy/pki/authorities/local/root.crt"
STORAGE_POLICY = "/api/v1/settings/storage_policy"
# Short enough for a test, the same rules otherwise (inventories/README.md).
VPS_TEST_DATA = {
    "prometheus_scrape_interval": "3s",
    "alert_not_ready_for": "6s",
    "release_health_timeout_s": 20,  # the broken release's test expects this in the gate's message
}
POLL_INTERVAL_S = 0.05
POLL_MAX_REQUESTS = 20_000
POLL_MAX_S = 900.0


@dataclass
class Deployed:
    hosts: TestHosts
    workdir: Path
    images: dict[str, app_images.SavedImage]
    ca_file: Path
    runs: dict[str, deploy_run.DeployRun] = field(default_factory=dict)
    client: Any = None  # the outer daemon's docker client (derived images)

    def host(self, name: str) -> TestHost:
        return next(host for host in self.hosts.hosts if host.name == name)

    def ssh(self, name: str) -> Any:
        """A testinfra host over SSH (paramiko), as root with the run's key."""
        address = self.host(name).address
        return testinfra.get_host(f"paramiko://{address}", ssh_config=str(self.hosts.ssh_config))

    def secret(self, name: str) -> str:
        """One value of the VPS's secrets file, read over SSH (tests only: a deploy never reads them)."""
        command = f"sed -n 's/^{name}=//p' {shlex.quote(layout.SECRETS_FILE)}"
        value = str(self.ssh(VPS).check_output(command)).strip()
        assert value, f"{name} is not in {layout.SECRETS_FILE}"
        return value

    def api(self, **kwargs: Any) -> httpx.Client:
        """A client of the VPS through its proxy, by the site's name (SNI and Host) and Caddy's CA."""
        return proxy_client(self.host(VPS).address, self.ca_file, **kwargs)

    def tenant_token(self, tenant: str = TENANT) -> str:
        return demo_token(secret=self.secret("JWT_SECRET"), audience="authenticated", tenant_id=tenant)

    def deploy(self, deploy_file: str, label: str, **environment: str) -> deploy_run.DeployRun:
        result = deploy_run.run(
            deploy_file,
            environment={**self.hosts.environment(), **environment},
            log=self.workdir / f"{label}.log",
        )
        self.runs[label] = result
        return result


def proxy_client(address: str, ca_file: Path, **kwargs: Any) -> httpx.Client:
    context = ssl.create_default_context(cafile=str(ca_file))

    def by_name(request: httpx.Request) -> None:
        request.extensions["sni_hostname"] = DOMAIN
        request.headers["Host"] = DOMAIN

    return httpx.Client(
        base_url=f"https://{address}",
        verify=context,
        timeout=10.0,
        event_hooks={"request": [by_name]},
        **kwargs,
    )


@dataclass
class Poller:
    """GETs one URL through the proxy every 50 ms while a deploy runs; bounded in count and time."""

    deployed: Deployed
    path: str
    headers: dict[str, str]
    answers: int = 0
    failures: list[str] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)

    def _loop(self) -> None:
        began = time.monotonic()
        with self.deployed.api(headers=self.headers) as client:
            while not self._stop.is_set() and self.answers < POLL_MAX_REQUESTS:
                if time.monotonic() - began > POLL_MAX_S:
                    self.failures.append(f"still polling after {POLL_MAX_S:.0f} s")
                    return
                try:
                    answer = client.get(self.path)
                    if answer.status_code != 200:
                        self.failures.append(f"{answer.status_code}: {answer.text[:200]}")
                except httpx.HTTPError as error:
                    self.failures.append(f"{type(error).__name__}: {error}")
                self.answers += 1
                time.sleep(POLL_INTERVAL_S)

    @contextlib.contextmanager
    def running(self) -> Iterator[Poller]:
        thread = threading.Thread(target=self._loop, name="proxy-poller", daemon=True)
        thread.start()
        try:
            yield self
        finally:
            self._stop.set()
            thread.join(timeout=30)


def _fetch_file(deployed: Deployed, name: str, remote: str, local: Path) -> Path:
    local.write_text(str(deployed.ssh(name).check_output(f"cat {shlex.quote(remote)}")) + "\n")
    return local


def _pairing_code(deployed: Deployed) -> str:
    token = deployed.secret("INTERNAL_INFRA_TOKEN")
    with deployed.api() as client:
        answer = client.post("/api/v1/agents/pairings", headers={"Authorization": f"Bearer {token}"})
    assert answer.status_code in (200, 201), answer.text
    return str(answer.json()["data"]["code"])


@pytest.fixture(scope="module")
def deployed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployed]:
    if daemon.find_running() is None and not daemon.can_start():
        skip_or_fail("no Docker daemon answers and dockerd cannot be started here")
    workdir = tmp_path_factory.mktemp("deploy-hosts")
    outer = daemon.obtain()
    try:
        with contextlib.ExitStack() as stack:
            tags = app_images.build(outer.client, workdir)
            images = {
                service: app_images.save(outer.client, tag, workdir / "images", service)
                for service, tag in tags.items()
            }
            rtdb = stack.enter_context(RtdbStandIn(outer.client, workdir, label={RUN_LABEL: "rtdb-standin"}))
            vps_data = {
                **VPS_TEST_DATA,
                "app_release": {"api_image": tags["api"], "frontend_image": tags["frontend"]},
                "app_image_archives": {
                    "api": str(images["api"].archive),
                    "frontend": str(images["frontend"].archive),
                },
                "supabase_db_only_image": tags["postgres"],
                "supabase_image_archives": {"db": str(images["postgres"].archive)},
                "firebase_database_url": rtdb.database_url,
                "firebase_emulator_host": rtdb.emulator_host,
                # The emulator speaks plain http, which the API refuses in production.
                "api_app_env": "development",
            }
            hosts = stack.enter_context(
                TestHosts(
                    {VPS: "vps", AGENT: "agents"},
                    host_data={VPS: vps_data},
                    aliases={AGENT: {DOMAIN: VPS}},
                )
            )
            state = Deployed(hosts, workdir, images, workdir / "caddy-root.pem", client=outer.client)
            first = state.deploy("deploy/vps.py", "vps-first")
            assert first.returncode == 0, first.describe()
            _fetch_file(state, VPS, CADDY_ROOT_CA, state.ca_file)
            hosts.add_host_data(
                AGENT,
                {"agent_server_url": f"https://{DOMAIN}", "agent_ca_file": str(state.ca_file)},
            )
            agent = state.deploy(
                "deploy/agent.py", "agent-first", BOTMOX_AGENT_PAIRING_CODE=_pairing_code(state)
            )
            assert agent.returncode == 0, agent.describe()
            state.deploy("deploy/vps.py", "vps-again")
            state.deploy("deploy/agent.py", "agent-again")
            print(
                "\ndeploy timings: "
                + ", ".join(f"{label} {run.seconds:.1f} s" for label, run in state.runs.items())
                + f"; test hosts up in {max(hosts.timings.ssh_ready_s.values()):.1f} s"
            )
            yield state
    finally:
        # The archives are big (hundreds of MB each); the logs stay for a look after a failure.
        shutil.rmtree(workdir / "images", ignore_errors=True)
        if outer.started is not None:
            outer.client.close()
            daemon.stop(outer.started, outer.child)
            daemon.release_mounts(daemon.DaemonPaths.default())


# -- the re-runs --------------------------------------------------------------------------------


@pytest.mark.parametrize("label", ["vps-again", "agent-again"])
def test_a_second_run_changes_nothing(deployed: Deployed, label: str) -> None:
    again = deployed.runs[label]
    assert again.returncode == 0, again.describe()
    assert again.operations > 0, again.describe()
    assert (again.changed, again.failed) == (0, 0), again.describe()


# -- the VPS, as testinfra sees it ---------------------------------------------------------------


VPS_PACKAGES = (
    "docker.io",
    "docker-compose",
    "caddy",
    "nftables",
    "unattended-upgrades",
    "postgresql-client-15",
    "prometheus",
    "prometheus-node-exporter",
    "prometheus-postgres-exporter",
    "prometheus-blackbox-exporter",
)
VPS_SERVICES = (
    "ssh",
    "docker",
    "caddy",
    "botmox-compose@supabase",
    "botmox-compose@app-blue",
    "prometheus",
    "prometheus-node-exporter",
    "prometheus-postgres-exporter",
    "prometheus-blackbox-exporter",
    "botmox-backup.timer",
)
PUBLIC_TCP_PORTS = {22, 80, 443}


def test_the_vps_has_its_packages_and_services(deployed: Deployed) -> None:
    host = deployed.ssh(VPS)
    missing = [name for name in VPS_PACKAGES if not host.package(name).is_installed]
    assert missing == []
    stopped = [
        name for name in VPS_SERVICES if not (host.service(name).is_running and host.service(name).is_enabled)
    ]
    assert stopped == []
    assert host.service("nftables").is_enabled
    assert "policy drop" in host.check_output("nft list table inet botmox_filter")


def test_the_vps_keeps_its_secrets_and_settings_private(deployed: Deployed) -> None:
    host = deployed.ssh(VPS)
    secrets_dir = host.file(layout.SECRETS_DIR)
    assert (secrets_dir.user, secrets_dir.mode) == ("root", 0o700)
    for path in (layout.SECRETS_FILE, f"{layout.CONFIG_DIR}/api.env"):
        found = host.file(path)
        assert (found.user, found.mode) == ("root", 0o600), path
    ops = host.user("ops")
    assert (ops.exists, ops.shell) == (True, "/bin/bash")
    sshd = host.file("/etc/ssh/sshd_config.d/50-botmox.conf")
    assert sshd.contains("^PasswordAuthentication no")


def _listening(host: Any) -> list[tuple[str, int]]:
    found = []
    for socket_url in host.socket.get_listening_sockets():
        protocol, _, where = socket_url.partition("://")
        if protocol != "tcp":
            continue
        address, _, port = where.rpartition(":")
        found.append((address, int(port)))
    return found


# What may listen beyond loopback, and a port that must still be closed to a neighbour on the bridge:
# the database's on the VPS (published on 127.0.0.1 only); SyncThing's sync port on the agent host, which
# listens for its peers but which the base firewall drops (the agent opens no inbound port).
EXPOSED = {VPS: ({22, 80, 443}, layout.DB_PORT), AGENT: ({22, 22000}, 22000)}


@pytest.mark.parametrize("name", [VPS, AGENT])
def test_only_intended_ports_listen_and_the_firewall_drops_the_rest(deployed: Deployed, name: str) -> None:
    allowed, closed = EXPOSED[name]
    exposed = {
        port for address, port in _listening(deployed.ssh(name)) if address not in ("127.0.0.1", "::1")
    }
    assert exposed <= allowed, f"{name} listens beyond loopback on {sorted(exposed - allowed)}"
    address = deployed.host(name).address
    with pytest.raises((TimeoutError, ConnectionRefusedError)):
        socket.create_connection((address, closed), timeout=3).close()
    socket.create_connection((address, 22), timeout=3).close()


def test_the_stack_answers_through_the_proxy_with_security_headers(deployed: Deployed) -> None:
    with deployed.api() as client:
        ready = client.get("/api/v1/health/ready")
        page = client.get("/")
    assert ready.status_code == 200, ready.text
    assert ready.json()["data"]["checks"]["supabase"]["ready"] is True
    assert page.status_code == 200
    for answer in (ready, page):
        assert answer.headers["strict-transport-security"].startswith("max-age=")
        assert answer.headers["x-content-type-options"] == "nosniff"
    plain = httpx.get(f"http://{deployed.host(VPS).address}/", headers={"Host": DOMAIN}, timeout=10)
    assert plain.status_code in (301, 308)
    assert plain.headers["location"].startswith(f"https://{DOMAIN}")


def test_a_storage_policy_round_trip_lands_in_postgresql(deployed: Deployed) -> None:
    headers = {"Authorization": f"Bearer {deployed.tenant_token()}"}
    with deployed.api(headers=headers) as client:
        put = client.put(STORAGE_POLICY, json={"operational": "local", "sync": {"enabled": True}})
        got = client.get(STORAGE_POLICY)
    assert put.status_code == 200, put.text
    assert got.status_code == 200, got.text
    assert got.json()["data"]["operational"] == "local"
    query = "select operational from public.storage_policies where tenant_id = 'default'"
    assert _psql(deployed.ssh(VPS), "postgres", query).strip() == "local"


# -- the agent host ------------------------------------------------------------------------------


def test_the_agent_host_runs_the_hardened_agent(deployed: Deployed) -> None:
    host = deployed.ssh(AGENT)
    assert host.package("syncthing").is_installed
    user = host.user(layout.AGENT_USER)
    assert user.exists
    assert user.shell == "/usr/sbin/nologin"
    state = host.file(layout.AGENT_STATE_DIR)
    assert (state.user, state.mode) == (layout.AGENT_USER, 0o700)
    secrets = host.file(layout.AGENT_SECRETS_FILE)
    assert secrets.mode == 0o600
    for unit in ("botmox-agent", f"syncthing@{layout.AGENT_USER}"):
        assert host.service(unit).is_running, unit
        assert host.service(unit).is_enabled, unit
    shown = host.check_output(
        "systemctl show botmox-agent -p NoNewPrivileges -p ProtectSystem -p ReadWritePaths"
    )
    assert "NoNewPrivileges=yes" in shown
    assert "ProtectSystem=strict" in shown
    assert host.run(f"curl -fsS http://{layout.AGENT_METRICS_ADDRESS}/healthz").rc == 0


def test_the_agent_host_is_paired_and_online_at_the_control_plane(deployed: Deployed) -> None:
    headers = {"Authorization": f"Bearer {deployed.tenant_token()}"}
    deadline = time.monotonic() + 30
    agents: list[dict[str, Any]] = []
    with deployed.api(headers=headers) as client:
        while time.monotonic() < deadline:
            answer = client.get("/api/v1/agents")
            assert answer.status_code == 200, answer.text
            agents = answer.json()["data"]
            if any(agent["name"] == AGENT and agent["online"] for agent in agents):
                return
            time.sleep(1)
    pytest.fail(f"{AGENT} is not online at the control plane: {json.dumps(agents)}")


# -- backups and secrets, by their runbooks ------------------------------------------------------


def _psql(host: Any, database: str, query: str) -> str:
    return str(
        host.check_output(
            f"set -a; . {layout.SECRETS_FILE}; PGPASSWORD=$POSTGRES_PASSWORD psql -h 127.0.0.1 -U postgres "
            f"-d {database} -XAtq -c {shlex.quote(query)}"
        )
    )


def test_the_nightly_backup_restores_into_a_fresh_database_with_the_same_policies(deployed: Deployed) -> None:
    host = deployed.ssh(VPS)
    host.check_output("systemctl start botmox-backup.service")  # what the timer starts at night
    dumps = host.check_output(f"ls {layout.BACKUP_DIR}")
    assert dumps.startswith("botmox-"), dumps
    assert host.file(f"{layout.NODE_EXPORTER_TEXTFILE_DIR}/botmox_backup.prom").contains(
        "botmox_backup_last_success_timestamp_seconds"
    )
    host.check_output("botmox-restore restore_check")  # the runbook's command: the newest dump
    query = "select tenant_id, operational, sync_enabled, version from public.storage_policies order by 1"
    live = _psql(host, "postgres", query)
    assert "default|local" in live
    assert _psql(host, "restore_check", query) == live


def test_rotating_the_api_s_database_password_by_the_runbook(deployed: Deployed) -> None:
    """docs/runbooks/rotate-secrets.md: delete the line, deploy, reload the active slot."""
    host = deployed.ssh(VPS)
    before = deployed.secret("BOTMOX_DB_API_PASSWORD")
    host.check_output(f"sed -i '/^BOTMOX_DB_API_PASSWORD=/d' {layout.SECRETS_FILE}")
    result = deployed.deploy("deploy/vps.py", "vps-rotate-db-api-password")
    assert result.returncode == 0, result.describe()
    assert (
        "Database migrations | Set botmox_api's password from the host's secrets" in result.changed_operations
    )
    assert deployed.secret("BOTMOX_DB_API_PASSWORD") != before
    host.check_output(f"systemctl reload botmox-compose@app-{_rollout_state(deployed)['active']}")
    headers = {"Authorization": f"Bearer {deployed.tenant_token()}"}
    with deployed.api(headers=headers) as client:
        _wait(
            "the storage policy read with the new password",
            lambda: client.get(STORAGE_POLICY).status_code == 200,
            60,
        )
    # The API's own pool connects afresh after the reload: with the new password, or not at all.
    assert (
        _psql(host, "postgres", "select count(*) > 0 from pg_stat_activity where usename = 'botmox_api'")
        == "t"
    )


# -- rollouts --------------------------------------------------------------------------------------


def _rollout_state(deployed: Deployed) -> dict[str, str]:
    text = str(deployed.ssh(VPS).check_output(f"cat {layout.ROLLOUT_STATE_FILE}"))
    return dict(line.split("=", 1) for line in text.splitlines() if "=" in line)


def _poller(deployed: Deployed) -> Poller:
    return Poller(deployed, STORAGE_POLICY, {"Authorization": f"Bearer {deployed.tenant_token()}"})


def _release(deployed: Deployed, name: str, instructions: str) -> dict[str, Any]:
    """Host data for a release whose API image is the first one's plus ``instructions``."""
    tag = app_images.derive(deployed.client, deployed.images["api"].ref, name, instructions)
    saved = app_images.save(deployed.client, tag, deployed.workdir / "images", f"api-{name}")
    return {
        "app_release": {"api_image": tag, "frontend_image": deployed.images["frontend"].ref},
        "app_image_archives": {
            "api": str(saved.archive),
            "frontend": str(deployed.images["frontend"].archive),
        },
    }


def test_a_new_release_takes_over_without_a_failed_request(deployed: Deployed) -> None:
    before = _rollout_state(deployed)
    deployed.hosts.add_host_data(VPS, _release(deployed, "next", 'LABEL org.botmox.release="next"'))
    with _poller(deployed).running() as poller:
        result = deployed.deploy("deploy/vps.py", "vps-next-release")
    assert result.returncode == 0, result.describe()
    after = _rollout_state(deployed)
    assert (before["active"], after["active"]) == ("blue", "green")
    assert after["blue_release"] == before["blue_release"]
    assert poller.failures == [], poller.failures[:5]
    assert poller.answers > 20


def test_rollback_restores_the_previous_release_without_a_failed_request(deployed: Deployed) -> None:
    before = _rollout_state(deployed)
    with _poller(deployed).running() as poller:
        result = deployed.deploy("deploy/rollback.py", "rollback")
    assert result.returncode == 0, result.describe()
    after = _rollout_state(deployed)
    assert (before["active"], after["active"]) == ("green", "blue")
    assert after["blue_release"] == before["blue_release"]
    assert deployed.ssh(VPS).service("botmox-compose@app-blue").is_running
    assert not deployed.ssh(VPS).service("botmox-compose@app-green").is_running
    assert poller.failures == [], poller.failures[:5]
    assert poller.answers > 20


def test_a_release_failing_its_health_check_leaves_the_previous_one_serving(deployed: Deployed) -> None:
    before = _rollout_state(deployed)
    broken = 'CMD ["python", "-c", "raise SystemExit(\'this release is broken on purpose\')"]'
    deployed.hosts.add_host_data(VPS, _release(deployed, "broken", broken))
    with _poller(deployed).running() as poller:
        result = deployed.deploy("deploy/vps.py", "vps-broken-release")
    assert result.returncode != 0, result.describe()
    assert "not healthy after 20s" in result.output(), result.describe()
    assert "stopping botmox-compose@app-green.service" in result.output(), result.describe()
    assert _rollout_state(deployed) == before
    host = deployed.ssh(VPS)
    assert host.service("botmox-compose@app-blue").is_running
    # The failed release was stopped, not left restarting beside the one serving.
    assert not host.service("botmox-compose@app-green").is_running
    assert poller.failures == [], poller.failures[:5]
    assert poller.answers > 20
    # Its slot no longer holds the release the state file names: a rollback there is refused.
    refused = deployed.deploy("deploy/rollback.py", "rollback-refused")
    assert refused.returncode != 0
    assert "no longer holds release" in refused.output(), refused.describe()


# -- monitoring -----------------------------------------------------------------------------------


def _prometheus(deployed: Deployed, path: str) -> Any:
    answer = deployed.ssh(VPS).check_output(f"curl -fsS 'http://127.0.0.1:{layout.PROMETHEUS_PORT}{path}'")
    return json.loads(answer)["data"]


def _wait(what: str, check: Any, timeout_s: float) -> Any:
    deadline = time.monotonic() + timeout_s
    last = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(1)
    pytest.fail(f"{what} within {timeout_s:.0f} s (last: {last})")


def test_prometheus_scrapes_the_api_node_and_postgresql(deployed: Deployed) -> None:
    def targets_up() -> dict[str, str] | None:
        health = {
            t["labels"]["job"]: t["health"] for t in _prometheus(deployed, "/api/v1/targets")["activeTargets"]
        }
        wanted = {"botmox-api", "botmox-api-ready", "node", "postgres"}
        return health if wanted <= set(health) and all(health[job] == "up" for job in wanted) else None

    _wait("every target up", targets_up, 60)


def test_the_readiness_alert_fires_when_the_database_stops(deployed: Deployed) -> None:
    host = deployed.ssh(VPS)
    host.check_output("systemctl stop botmox-compose@supabase")
    try:

        def firing() -> list[str]:
            alerts = _prometheus(deployed, "/api/v1/alerts")["alerts"]
            return [a["labels"]["alertname"] for a in alerts if a["state"] == "firing"]

        names = _wait("BotmoxApiNotReady firing", lambda: "BotmoxApiNotReady" in firing() and firing(), 120)
        assert "BotmoxApiNotReady" in names
    finally:
        host.check_output("systemctl start botmox-compose@supabase")
    with deployed.api() as client:
        _wait("the API ready again", lambda: client.get("/api/v1/health/ready").status_code == 200, 120)
