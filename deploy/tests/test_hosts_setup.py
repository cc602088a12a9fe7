"""What the test hosts (deploy/tests/hosts.py) set up without Docker: the run's key, root's
authorized_keys, the image's tag and the hosts file that ``inventories/test.py`` reads."""

from __future__ import annotations

import io
import json
import stat
import tarfile
from pathlib import Path

import paramiko
import pytest

from deploy.tests.hosts import (
    HOST_CA_PATH,
    PIP_CONF_PATH,
    TestHost,
    TestHosts,
    authorized_keys_archive,
    describe,
    dockerfile,
    image_tag,
    trust_archive,
    write_key,
)
from deploy.tests.test_inventories import make_inventory


def test_the_run_key_is_private_and_its_public_line_matches(tmp_path: Path) -> None:
    path, public_line = write_key(tmp_path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    loaded = paramiko.Ed25519Key.from_private_key_file(str(path))
    assert public_line.split()[:2] == [loaded.get_name(), loaded.get_base64()]
    with pytest.raises(FileExistsError):
        write_key(tmp_path)  # never overwrites a key


def test_authorized_keys_are_roots_with_ssh_modes() -> None:
    with tarfile.open(fileobj=io.BytesIO(authorized_keys_archive("ssh-ed25519 AAAA test\n"))) as archive:
        members = {member.name: member for member in archive.getmembers()}
        assert members[".ssh"].isdir()
        assert members[".ssh"].mode == 0o700
        keys = members[".ssh/authorized_keys"]
        assert keys.mode == 0o600
        assert (keys.uid, keys.gid) == (0, 0)
        extracted = archive.extractfile(keys)
        assert extracted is not None
        assert extracted.read() == b"ssh-ed25519 AAAA test\n"


def test_the_image_is_systemd_as_init_and_tagged_by_its_inputs() -> None:
    text = dockerfile("botmox-local/debian-base:bookworm")
    assert text.startswith("FROM botmox-local/debian-base:bookworm\n")
    for package in ("systemd", "systemd-sysv", "openssh-server", "dbus", "python3", "sudo"):
        assert f" {package}" in text
    assert "STOPSIGNAL SIGRTMIN+3" in text
    assert 'CMD ["/sbin/init"]' in text
    tag = image_tag("botmox-local/debian-base:bookworm", "sha256:1")
    assert tag == image_tag("botmox-local/debian-base:bookworm", "sha256:1")
    assert tag != image_tag("botmox-local/debian-base:bookworm", "sha256:2")
    assert tag.startswith("botmox-local/test-host:")


def test_the_hosts_file_is_what_the_test_inventory_reads(tmp_path: Path) -> None:
    hosts = [
        TestHost("vps-test", "vps", "c1", "172.17.0.2"),
        TestHost("agent-test", "agents", "c2", "172.17.0.3"),
    ]
    key = tmp_path / "id_ed25519"
    described = describe(hosts, key, {"agent-test": {"agent_server_url": "https://botmox.test"}})
    hosts_file = tmp_path / "hosts.json"
    hosts_file.write_text(json.dumps(described))
    inventory = make_inventory("inventories/test.py", {"BOTMOX_TEST_HOSTS_FILE": str(hosts_file)})
    vps = inventory["vps-test"]
    assert "vps" in vps["groups"]
    assert vps["data"]["ssh_hostname"] == "172.17.0.2"
    assert vps["data"]["ssh_user"] == "root"
    assert vps["data"]["ssh_key"] == str(key)
    assert vps["data"]["_sudo"] is False
    agent = inventory["agent-test"]
    assert "agents" in agent["groups"]
    assert agent["data"]["agent_server_url"] == "https://botmox.test"


def test_only_the_inventory_groups_are_accepted() -> None:
    with pytest.raises(ValueError, match="unknown groups"):
        TestHosts({"db": "databases"})


def test_an_alias_must_name_a_host_started_before() -> None:
    TestHosts(
        {"vps-test": "vps", "agent-test": "agents"}, aliases={"agent-test": {"botmox.test": "vps-test"}}
    )
    with pytest.raises(ValueError, match="must name a host started before it"):
        TestHosts(
            {"agent-test": "agents", "vps-test": "vps"}, aliases={"agent-test": {"botmox.test": "vps-test"}}
        )
    with pytest.raises(ValueError, match="must name a host started before it"):
        TestHosts({"agent-test": "agents"}, aliases={"agent-test": {"botmox.test": "nowhere"}})


def test_the_hosts_trust_this_machine_s_ca_for_pip() -> None:
    bundle = b"-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"
    with tarfile.open(fileobj=io.BytesIO(trust_archive(bundle))) as archive:
        files = {m.name: archive.extractfile(m) for m in archive.getmembers() if m.isfile()}
        ca = files[HOST_CA_PATH.lstrip("/")]
        config = files[PIP_CONF_PATH.lstrip("/")]
        assert ca is not None
        assert config is not None
        assert ca.read() == bundle
        assert config.read().decode() == f"[global]\ncert = {HOST_CA_PATH}\n"
