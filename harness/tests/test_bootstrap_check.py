"""``make bootstrap-check`` without Docker: what goes into the container and how its log is followed.

The check itself (``.ci/run`` in a fresh Debian 12 container, ~11 min) is run by hand before an
issue that changes a dependency is resolved; see docs/runbooks/bootstrap-check.md.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from harness import bootstrap_check
from harness.bootstrap_check import CheckError, CheckPaths, LogPump
from harness.fixtures.tools import require_tool
from harness.stack.docker import ca, daemon


def test_the_container_gets_the_ca_bundle_and_url_indexes_but_no_file_index(tmp_path: Path) -> None:
    bundle = tmp_path / "ca.pem"
    machine = {
        "PIP_INDEX_URL": "https://pypi.example/simple",
        "PIP_EXTRA_INDEX_URL": "file:///opt/pypi/simple",
        "HOME": "/root",
    }
    environment = bootstrap_check.container_environment(bundle, machine)
    assert environment["CI"] == "true"
    for name in ("SSL_CERT_FILE", "REQUESTS_CA_BUNDLE", "PIP_CERT", "NODE_EXTRA_CA_CERTS"):
        assert environment[name] == ca.CONTAINER_PATH
    assert environment["PIP_INDEX_URL"] == "https://pypi.example/simple"
    assert "PIP_EXTRA_INDEX_URL" not in environment
    assert "HOME" not in environment
    assert "SSL_CERT_FILE" not in bootstrap_check.container_environment(None, machine)


def test_the_container_is_a_server_like_test_host_not_privileged(tmp_path: Path) -> None:
    paths = CheckPaths(tmp_path)
    bundle = tmp_path / "ca.pem"
    options = bootstrap_check.container_options(paths, bundle)
    assert "privileged" not in options
    assert options["cap_add"] == ["ALL"]
    assert options["cap_drop"] == ["SYS_RESOURCE"]
    assert options["security_opt"] == ["seccomp=unconfined", "apparmor=unconfined"]
    assert options["cgroupns"] == "host"
    volumes = options["volumes"]
    assert isinstance(volumes, dict)
    assert volumes["/sys/fs/cgroup"]["mode"] == "rw"
    assert volumes[str(paths.clone)]["bind"] == "/ci/botmox-ops"
    assert volumes[str(paths.shared)]["bind"] == "/ci/shared"  # ../shared of the clone, as in CI
    assert volumes[str(paths.inner_docker_root)]["bind"] == str(daemon.DEFAULT_ROOT)
    assert volumes[str(bundle)] == {"bind": ca.CONTAINER_PATH, "mode": "ro"}


def _git(cwd: Path, *args: str) -> None:
    git = require_tool("git", "apt-get install -y git")
    subprocess.run([git, *args], cwd=cwd, check=True, capture_output=True, timeout=60)


@pytest.fixture
def project(tmp_path: Path) -> Path:
    root = tmp_path / "work" / "botmox-ops"
    root.mkdir(parents=True)
    _git(root, "init", "--quiet")
    (root / "committed.txt").write_text("committed\n")
    _git(root, "add", "committed.txt")
    _git(root, "-c", "user.name=t", "-c", "user.email=t@example.invalid", "commit", "--quiet", "-m", "one")
    (root / "committed.txt").write_text("changed, not committed\n")
    (root / "untracked.txt").write_text("untracked\n")
    return root


def test_the_workspace_is_a_clone_of_the_commit_with_shared_beside_it(project: Path, tmp_path: Path) -> None:
    shared = tmp_path / "work" / "shared"
    (shared / "spec").mkdir(parents=True)
    (shared / "spec" / "api-v1.md").write_text("contract\n")
    paths = CheckPaths(project)
    assert bootstrap_check.find_shared(project) == shared
    commit = bootstrap_check.prepare_workspace(paths, shared)
    assert len(commit) == 40
    assert (paths.clone / "committed.txt").read_text() == "committed\n"
    assert not (paths.clone / "untracked.txt").exists()
    assert (paths.clone.parent / "shared" / "spec" / "api-v1.md").read_text() == "contract\n"
    assert paths.inner_docker_root.is_dir()


def test_an_older_commit_can_be_checked_and_a_bad_one_is_a_clear_error(project: Path, tmp_path: Path) -> None:
    (project / "second.txt").write_text("second\n")
    _git(project, "add", "second.txt")
    _git(project, "-c", "user.name=t", "-c", "user.email=t@example.invalid", "commit", "--quiet", "-m", "two")
    shared = tmp_path / "work" / "shared"
    shared.mkdir()
    paths = CheckPaths(project)
    bootstrap_check.prepare_workspace(paths, shared, "HEAD~1")
    assert (paths.clone / "committed.txt").exists()
    assert not (paths.clone / "second.txt").exists()
    with pytest.raises(CheckError, match="rev-parse"):
        bootstrap_check.prepare_workspace(paths, shared, "no-such-commit")


def test_a_missing_shared_directory_is_a_clear_error(project: Path, tmp_path: Path) -> None:
    with pytest.raises(CheckError, match="no shared directory"):
        bootstrap_check.find_shared(project)
    with pytest.raises(CheckError, match="no shared directory"):
        bootstrap_check.find_shared(project, tmp_path / "nowhere")


def test_the_log_pump_writes_everything_echoes_progress_and_keeps_the_tail(tmp_path: Path) -> None:
    chunks = [
        b"ci: 2026-12-06 on Debian\nnoise 1\nbootstrap: installing",
        b" apt packages: caddy\n",
        b".tools/bin/uv run --frozen pytest\n",
        *(f"line {n}\n".encode() for n in range(100)),
        b"======== 3 failed, 660 passed in 400.00s ========\nno newline at the end",
    ]
    echoed: list[str] = []
    log = tmp_path / "check.log"
    pump = LogPump(iter(chunks), log, echoed.append)
    pump.start()
    pump.join(timeout=10)
    assert log.read_text().splitlines()[:3] == [
        "ci: 2026-12-06 on Debian",
        "noise 1",
        "bootstrap: installing apt packages: caddy",
    ]
    assert log.read_text().endswith("no newline at the end\n")
    assert echoed == [
        "  | ci: 2026-12-06 on Debian",
        "  | bootstrap: installing apt packages: caddy",
        "  | .tools/bin/uv run --frozen pytest",
        "  | ======== 3 failed, 660 passed in 400.00s ========",
    ]
    assert len(pump.tail) == bootstrap_check.TAIL_LINES
    assert pump.tail[-1] == "no newline at the end"
