"""harness.syncthing: a SyncThing on 127.0.0.1 only, one process, ready with its key, stopped by PID."""

from __future__ import annotations

import os
import xml.etree.ElementTree as ET
from pathlib import Path

import httpx
import pytest

from harness import processes
from harness import syncthing as syncthing_module
from harness.syncthing import LOOPBACK_OPTIONS, SyncthingProcess, SyncthingStartError, configure_home

# /proc/net/* state of a listening TCP socket; UDP sockets have no listening state.
TCP_LISTEN = "0A"
LOOPBACK_V4 = "0100007F"


def sockets_of(pid: int) -> list[tuple[str, str, str, str]]:
    """(protocol, local address, remote address, state) of every IP socket the process holds."""
    links = [os.readlink(f"/proc/{pid}/fd/{fd}") for fd in os.listdir(f"/proc/{pid}/fd")]
    inodes = {link[len("socket:[") : -1] for link in links if link.startswith("socket:[")}
    found = []
    for protocol in ("tcp", "tcp6", "udp", "udp6"):
        for line in Path(f"/proc/net/{protocol}").read_text().splitlines()[1:]:
            fields = line.split()
            if fields[9] in inodes:
                found.append((protocol, fields[1], fields[2], fields[3]))
    return found


def test_configure_home_applies_the_loopback_rules(tmp_path: Path) -> None:
    device = configure_home(tmp_path / "home", gui_port=18384, api_key="k" * 32)
    assert len(device) == 63
    root = ET.parse(tmp_path / "home" / "config.xml").getroot()  # noqa: S314 - our own file
    options = root.find("options")
    assert options is not None
    assert {name: options.findtext(name) for name in LOOPBACK_OPTIONS} == dict(LOOPBACK_OPTIONS)
    assert root.findtext("gui/address") == "127.0.0.1:18384"
    assert root.findtext("gui/apikey") == "k" * 32
    assert (tmp_path / "home" / "config.xml").stat().st_mode & 0o077 == 0
    # Applying again keeps one element per option and the same device.
    assert configure_home(tmp_path / "home", gui_port=18385, api_key="j" * 32) == device
    options = ET.parse(tmp_path / "home" / "config.xml").getroot().find("options")  # noqa: S314
    assert options is not None
    assert len(options.findall("listenAddress")) == 1


def test_it_runs_alone_on_loopback_and_stops_by_pid(tmp_path: Path) -> None:
    with SyncthingProcess(tmp_path / "home") as syncthing:
        assert syncthing.pid is not None
        identity = processes.identify(syncthing.pid)
        assert identity is not None
        answer = httpx.get(
            f"{syncthing.url}/rest/system/status", headers={"X-API-Key": syncthing.api_key}, trust_env=False
        )
        assert answer.json()["myID"] == syncthing.device_id
        # No monitor: no other process in its session.
        session = [
            pid
            for pid in map(int, filter(str.isdigit, os.listdir("/proc")))
            if _session_of(pid) == syncthing.pid
        ]
        assert session == [syncthing.pid]
        held = sockets_of(syncthing.pid)
        assert held, "SyncThing listens for its GUI and for peers"
        for protocol, local, remote, state in held:
            assert protocol == "tcp", held  # no UDP: no discovery broadcasts, no QUIC
            assert local.startswith(LOOPBACK_V4), held
            assert state == TCP_LISTEN or remote.startswith(LOOPBACK_V4), held
    assert not processes.is_running(identity)


def test_a_wrong_key_is_refused(tmp_path: Path) -> None:
    with SyncthingProcess(tmp_path / "home") as syncthing:
        answer = httpx.get(
            f"{syncthing.url}/rest/system/status", headers={"X-API-Key": "wrong"}, trust_env=False
        )
        assert answer.status_code == 403


def _session_of(pid: int) -> int | None:
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(raw[raw.rfind(")") + 2 :].split()[3])


def test_a_failed_start_leaves_no_process_and_no_home_of_its_own(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(syncthing_module, "PROGRAM", "false")  # `generate` fails at once
    process = SyncthingProcess()
    with pytest.raises(SyncthingStartError, match="generate"):
        process.start()
    assert process.pid is None
    assert not process.home.exists()
