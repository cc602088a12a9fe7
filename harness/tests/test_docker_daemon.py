"""Finding or starting a Docker daemon, and the Debian base's mirror, without a daemon."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from harness.stack.docker import ca, daemon
from harness.stack.docker.base import PUBLIC_MIRROR, debian_mirror
from harness.stack.docker.daemon import DaemonPaths


def test_a_started_daemon_owns_every_path_and_keeps_its_bridge(tmp_path: Path) -> None:
    paths = DaemonPaths(tmp_path / "docker")
    command = paths.command("vfs")
    assert command[0] == "dockerd"
    assert "--storage-driver=vfs" in command
    for option, path in (
        ("--data-root", paths.data_root),
        ("--exec-root", paths.exec_root),
        ("--pidfile", paths.pidfile),
    ):
        assert f"{option}={path}" in command
        assert path.is_relative_to(paths.root)
    assert f"--host=unix://{tmp_path / 'docker' / 'docker.sock'}" in command
    assert not any(part.startswith("--bridge") for part in command)


def test_the_default_root_is_outside_the_checkout(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(daemon.ROOT_VARIABLE, raising=False)
    root = DaemonPaths.default().root
    assert not root.resolve().is_relative_to(Path(__file__).resolve().parents[2])


def test_storage_drivers_overlay2_first_then_the_one_that_worked(tmp_path: Path) -> None:
    paths = DaemonPaths(tmp_path)
    assert daemon._driver_order(paths) == ["overlay2", "vfs"]
    paths.driver_file.write_text("vfs\n")
    assert daemon._driver_order(paths) == ["vfs", "overlay2"]
    paths.driver_file.write_text("zfs\n")
    assert daemon._driver_order(paths) == ["overlay2", "vfs"]


def test_no_daemon_answers_on_missing_sockets(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path / 'nothing.sock'}")
    monkeypatch.setattr(daemon, "DEFAULT_SOCKET", f"unix://{tmp_path / 'default.sock'}")
    assert daemon.connect(f"unix://{tmp_path / 'nothing.sock'}") is None
    assert daemon.find_running(DaemonPaths(tmp_path / "own")) is None


def test_the_mirror_is_the_one_apt_uses(tmp_path: Path) -> None:
    sources = tmp_path / "debian.sources"
    sources.write_text(
        "Types: deb\nURIs: http://mirror.example/debian-security\nSuites: bookworm-security\n\n"
        "Types: deb\nURIs: http://mirror.example/debian\nSuites: bookworm bookworm-updates\n"
        "Components: main\n"
    )
    assert debian_mirror(sources, tmp_path / "none.list") == "http://mirror.example/debian"


def test_the_mirror_falls_back_to_sources_list_then_debian(tmp_path: Path) -> None:
    legacy = tmp_path / "sources.list"
    legacy.write_text("deb [arch=amd64] http://old.example/debian bookworm main\n")
    assert debian_mirror(tmp_path / "none.sources", legacy) == "http://old.example/debian"
    assert debian_mirror(tmp_path / "none.sources", tmp_path / "none.list") == PUBLIC_MIRROR


def test_the_ca_bundle_url_is_stable_between_builds(tmp_path: Path) -> None:
    bundle = tmp_path / "ca.pem"
    bundle.write_text("-----BEGIN CERTIFICATE-----\nnot really\n-----END CERTIFICATE-----\n")
    with ca.served(bundle) as first:
        assert httpx.get(first, timeout=5, trust_env=False).content == bundle.read_bytes()
        assert httpx.get(first.replace("/ca.pem", "/other"), timeout=5, trust_env=False).status_code == 404
    with ca.served(bundle) as second:
        assert second == first
    with ca.served(None) as nothing:
        assert nothing == ""
