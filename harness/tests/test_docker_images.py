"""Image inputs: what is hashed, what is sent as the build context, when an image is reused."""

from __future__ import annotations

import dataclasses
import io
import re
import shutil
import tarfile
import tomllib
from pathlib import Path

import pytest

from harness import syncthing
from harness.postgres.supabase import find_project_root
from harness.stack.description import STACK, ImageBuild
from harness.stack.docker.images import (
    CONTEXT_DOCKERFILE,
    LOCKED_REQUIREMENTS,
    WORKSPACE_DIR,
    BuildInputs,
    ImageBuildFailed,
    context_files,
    context_tar,
    inputs_of,
    workspace_prefix,
)


def _context(tmp_path: Path) -> tuple[Path, Path]:
    context = tmp_path / "context"
    (context / "src" / "__pycache__").mkdir(parents=True)
    (context / "src" / "app.py").write_text("print('hi')\n")
    (context / "src" / "__pycache__" / "app.cpython-311.pyc").write_bytes(b"\0")
    (context / "src" / "stale.pyc").write_bytes(b"\0")
    (context / ".env").write_text("SUPABASE_JWT_SECRET=do-not-ship\n")
    (context / "run.sh").write_text("#!/bin/sh\n")
    (context / "run.sh").chmod(0o755)
    dockerfile = tmp_path / "Dockerfile"
    dockerfile.write_text("ARG BASE_IMAGE\nFROM ${BASE_IMAGE}\nCOPY . /app\n")
    return context, dockerfile


def _inputs(context: Path, dockerfile: Path, base_id: str = "sha256:base1") -> BuildInputs:
    return BuildInputs(
        service="api",
        context=context,
        dockerfile=dockerfile,
        files=context_files(context),
        base_image="botmox-local/debian-base:bookworm",
        base_image_id=base_id,
    )


def test_caches_and_env_files_are_not_inputs(tmp_path: Path) -> None:
    context, _ = _context(tmp_path)
    assert context_files(context) == ("run.sh", "src/app.py")


def test_the_hash_is_stable_and_ignores_caches(tmp_path: Path) -> None:
    context, dockerfile = _context(tmp_path)
    first = _inputs(context, dockerfile).digest()
    (context / "src" / "__pycache__" / "other.pyc").write_bytes(b"\1")
    (context / ".env").write_text("changed\n")
    assert _inputs(context, dockerfile).digest() == first
    assert _inputs(context, dockerfile).tag() == f"botmox-local/api:{first[:16]}"


def test_every_input_changes_the_hash(tmp_path: Path) -> None:
    context, dockerfile = _context(tmp_path)
    seen = {_inputs(context, dockerfile).digest()}
    (context / "src" / "app.py").write_text("print('changed')\n")
    seen.add(_inputs(context, dockerfile).digest())
    (context / "run.sh").chmod(0o644)
    seen.add(_inputs(context, dockerfile).digest())
    (context / "src" / "new.py").write_text("")
    seen.add(_inputs(context, dockerfile).digest())
    dockerfile.write_text(dockerfile.read_text() + "USER 65534\n")
    seen.add(_inputs(context, dockerfile).digest())
    seen.add(_inputs(context, dockerfile, base_id="sha256:base2").digest())
    # A file renamed with the same content is a different input too.
    (context / "src" / "new.py").rename(context / "src" / "renamed.py")
    seen.add(_inputs(context, dockerfile).digest())
    assert len(seen) == 7


def test_the_context_sent_is_exactly_the_hashed_files(tmp_path: Path) -> None:
    context, dockerfile = _context(tmp_path)
    inputs = _inputs(context, dockerfile)
    with tarfile.open(fileobj=io.BytesIO(context_tar(inputs).getvalue())) as archive:
        members = {member.name: member for member in archive.getmembers()}
        assert set(members) == {*inputs.files, CONTEXT_DOCKERFILE}
        assert members["run.sh"].mode == 0o755
        assert members["src/app.py"].mode == 0o644
        assert {member.mtime for member in members.values()} == {0}
        packed = archive.extractfile(CONTEXT_DOCKERFILE)
        assert packed is not None
        assert packed.read() == dockerfile.read_bytes()


def test_the_description_images_have_their_dockerfiles() -> None:
    root = find_project_root()
    for spec in STACK.services:
        inputs = inputs_of(spec, root, spec.image.base_image, "sha256:x")
        text = inputs.dockerfile.read_text()
        assert "ARG BASE_IMAGE=" + spec.image.base_image in text, spec.name
        assert "FROM ${BASE_IMAGE}" in text, spec.name
        assert inputs.files, f"{spec.name}: empty build context"


def _locked_versions(root: Path) -> dict[str, str]:
    lock = tomllib.loads((root / "uv.lock").read_text())
    return {package["name"]: package["version"] for package in lock["package"] if "version" in package}


def test_the_api_context_carries_the_uv_lock_pins() -> None:
    """The API image installs uv.lock's pins (hash-checked), generated into the context at build
    time, not pyproject.toml's version ranges; the image runs with APP_ENV=production."""
    root = find_project_root()
    spec = STACK.service("api")
    inputs = inputs_of(spec, root, spec.image.base_image, "sha256:x")
    assert LOCKED_REQUIREMENTS not in inputs.files  # generated, never a file of the source tree
    with tarfile.open(fileobj=io.BytesIO(context_tar(inputs).getvalue())) as archive:
        packed = archive.extractfile(LOCKED_REQUIREMENTS)
        assert packed is not None
        requirements = packed.read().decode()
        dockerfile = archive.extractfile(CONTEXT_DOCKERFILE)
        assert dockerfile is not None
        dockerfile_text = dockerfile.read().decode()
    pins = {
        match.group(1): match.group(2)
        for match in re.finditer(r"^([A-Za-z0-9_.-]+)==([^\s;]+)", requirements, re.MULTILINE)
    }
    locked = _locked_versions(root)
    assert pins, requirements
    assert all(locked[name] == version for name, version in pins.items()), requirements
    # Every runtime dependency of the API and its own dependencies, and nothing of the dev group.
    for direct in ("fastapi", "uvicorn", "pydantic", "psycopg", "firebase-admin", "structlog", "starlette"):
        assert pins[direct] == locked[direct], direct
    assert not {"pytest", "ruff", "mypy", "botmox-api", "botmox-protocol", "botmox-harness"} & set(pins)
    assert requirements.count("--hash=sha256:") >= len(pins)
    assert "--require-hashes --no-deps -r /src/requirements.lock.txt" in dockerfile_text
    assert '["project"]["dependencies"]' not in dockerfile_text  # the ranges are not installed
    assert re.search(r"^\s+APP_ENV=production \\$", dockerfile_text, re.MULTILINE)


def test_a_pin_change_in_uv_lock_changes_the_image_hash(tmp_path: Path) -> None:
    context, dockerfile = _context(tmp_path)
    plain = _inputs(context, dockerfile)
    locked = dataclasses.replace(plain, generated=((LOCKED_REQUIREMENTS, b"fastapi==1.0 \\\n"),))
    bumped = dataclasses.replace(plain, generated=((LOCKED_REQUIREMENTS, b"fastapi==1.1 \\\n"),))
    assert len({plain.digest(), locked.digest(), bumped.digest()}) == 3


def test_local_stacks_run_the_api_image_in_development() -> None:
    """The image defaults to production; the harness's stacks (native, docker, compose) say
    development explicitly, since they run emulators and local databases."""
    api = STACK.service("api")
    assert api.environment["APP_ENV"] == "development"
    compose = (find_project_root() / "compose.local.yaml").read_text()
    assert 'APP_ENV: "development"' in compose


def _workspace_package(root: Path) -> Path:
    package = root / "packages" / "protocol"
    (package / "src" / "botmox_protocol").mkdir(parents=True)
    (package / "tests").mkdir()
    (package / "pyproject.toml").write_text('[project]\nname = "botmox-protocol"\n')
    (package / "src" / "botmox_protocol" / "__init__.py").write_text("VERSION = 1\n")
    (package / "tests" / "test_frames.py").write_text("def test(): pass\n")
    (package / "README.md").write_text("notes\n")
    return package


def _with_workspace(tmp_path: Path) -> BuildInputs:
    """The inputs of an image whose context is ``_context``'s and that installs ``packages/protocol``."""
    spec = dataclasses.replace(
        STACK.service("rtdb"),
        image=ImageBuild("context", "Dockerfile", "b", workspace_packages=("packages/protocol",)),
    )
    return inputs_of(spec, tmp_path, "b", "sha256:base1")


def test_workspace_packages_are_copied_into_the_context_under_a_fixed_place(tmp_path: Path) -> None:
    _context(tmp_path)
    package = _workspace_package(tmp_path)
    inputs = _with_workspace(tmp_path)
    assert inputs.workspace[0][:2] == (f"{WORKSPACE_DIR}/protocol", package)
    assert workspace_prefix("services/protocol") == f"{WORKSPACE_DIR}/protocol"
    with tarfile.open(fileobj=io.BytesIO(context_tar(inputs).getvalue())) as archive:
        names = set(archive.getnames())
        packed = archive.extractfile(f"{WORKSPACE_DIR}/protocol/src/botmox_protocol/__init__.py")
        assert packed is not None
        assert packed.read() == b"VERSION = 1\n"
    # What pip needs (pyproject.toml and src/), never the package's tests or notes.
    assert names == {
        "run.sh",
        "src/app.py",
        f"{WORKSPACE_DIR}/protocol/pyproject.toml",
        f"{WORKSPACE_DIR}/protocol/src/botmox_protocol/__init__.py",
        CONTEXT_DOCKERFILE,
    }
    # Hashed as what is sent: the names of the tar are those of the hash.
    assert {name for name, _ in inputs.sources()} == names - {CONTEXT_DOCKERFILE}


def test_a_change_in_a_workspace_package_changes_the_image_hash(tmp_path: Path) -> None:
    _context(tmp_path)
    package = _workspace_package(tmp_path)
    inputs = _with_workspace(tmp_path)
    seen = {inputs.digest()}
    (package / "src" / "botmox_protocol" / "__init__.py").write_text("VERSION = 2\n")
    seen.add(_with_workspace(tmp_path).digest())
    (package / "src" / "botmox_protocol" / "frames.py").write_text("")
    seen.add(_with_workspace(tmp_path).digest())
    (package / "pyproject.toml").write_text('[project]\nname = "botmox-protocol"\nversion = "2"\n')
    seen.add(_with_workspace(tmp_path).digest())
    assert len(seen) == 4
    # Its tests and notes are no input.
    (package / "tests" / "test_frames.py").write_text("def test(): assert True\n")
    (package / "README.md").write_text("other notes\n")
    assert _with_workspace(tmp_path).digest() in seen
    # Without the package, the same context hashes differently.
    plain = dataclasses.replace(_with_workspace(tmp_path), workspace=())
    assert plain.digest() not in seen


def test_a_stale_workspace_copy_in_the_source_tree_is_not_sent(tmp_path: Path) -> None:
    context, _ = _context(tmp_path)
    _workspace_package(tmp_path)
    stale = context / WORKSPACE_DIR / "protocol" / "src" / "botmox_protocol"
    stale.mkdir(parents=True)
    (stale / "__init__.py").write_text("VERSION = 0\n")
    (stale / "old.py").write_text("")
    inputs = _with_workspace(tmp_path)
    assert not any(name.startswith(f"{WORKSPACE_DIR}/") for name in inputs.files)
    with tarfile.open(fileobj=io.BytesIO(context_tar(inputs).getvalue())) as archive:
        assert f"{WORKSPACE_DIR}/protocol/src/botmox_protocol/old.py" not in archive.getnames()
        packed = archive.extractfile(f"{WORKSPACE_DIR}/protocol/src/botmox_protocol/__init__.py")
        assert packed is not None
        assert packed.read() == b"VERSION = 1\n"


def test_a_workspace_package_needs_a_pyproject(tmp_path: Path) -> None:
    (tmp_path / "context").mkdir()
    (tmp_path / "Dockerfile").write_text("FROM x\n")
    (tmp_path / "notapackage" / "src").mkdir(parents=True)
    spec = dataclasses.replace(
        STACK.service("rtdb"),
        image=ImageBuild("context", "Dockerfile", "b", workspace_packages=("notapackage",)),
    )
    with pytest.raises(ImageBuildFailed, match="no Python package"):
        inputs_of(spec, tmp_path, "b", "sha256:x")


def test_a_protocol_change_rebuilds_the_api_and_agent_images(tmp_path: Path) -> None:
    """The real description: services/protocol is an input of the API's and the agent's images, and
    their Dockerfiles install it (pip --no-deps) before the service's own package."""
    root = find_project_root()
    for name in ("api", "agent"):
        spec = STACK.service(name)
        inputs = inputs_of(spec, root, spec.image.base_image, "sha256:x")
        names = {relative for relative, _ in inputs.sources()}
        assert f"{WORKSPACE_DIR}/protocol/pyproject.toml" in names, name
        assert f"{WORKSPACE_DIR}/protocol/src/botmox_protocol/frames.py" in names, name
        copy = tmp_path / name
        shutil.copytree(root / "services" / "protocol", copy, ignore=shutil.ignore_patterns("__pycache__"))
        changed = dataclasses.replace(
            inputs, workspace=((f"{WORKSPACE_DIR}/protocol", copy, inputs.workspace[0][2]),)
        )
        assert changed.digest() == inputs.digest(), name
        (copy / "src" / "botmox_protocol" / "frames.py").write_text("# changed\n", encoding="utf-8")
        assert changed.digest() != inputs.digest(), name
        dockerfile = inputs.dockerfile.read_text()
        workspace_install = dockerfile.index("COPY workspace /src/workspace")
        assert workspace_install < dockerfile.index("COPY src /src/src"), name
        assert '--no-deps --no-build-isolation "$package"' in dockerfile, name


def test_the_syncthing_image_runs_with_the_harness_s_syncthing_rules() -> None:
    """The image's defaults are harness.syncthing's variables (the harness passes them as well)."""
    dockerfile = (find_project_root() / "harness/docker/syncthing/Dockerfile").read_text()
    for name, value in syncthing.ENVIRONMENT.items():
        assert re.search(rf"^\s+{name}={value} \\$", dockerfile, re.MULTILINE), name
    assert "apt-get install -y --no-install-recommends syncthing" in dockerfile


def test_the_agent_context_carries_its_own_uv_lock_pins() -> None:
    root = find_project_root()
    spec = STACK.service("agent")
    inputs = inputs_of(spec, root, spec.image.base_image, "sha256:x")
    generated = dict(inputs.generated)
    requirements = generated[LOCKED_REQUIREMENTS].decode()
    pins = {
        match.group(1): match.group(2)
        for match in re.finditer(r"^([A-Za-z0-9_.-]+)==([^\s;]+)", requirements, re.MULTILINE)
    }
    locked = _locked_versions(root)
    for direct in ("websockets", "pynacl", "keyring", "pydantic-settings", "prometheus-client", "httpx"):
        assert pins[direct] == locked[direct], direct
    # The workspace packages come from the context's workspace/ copies, never from an index.
    assert not {"botmox-agent", "botmox-protocol", "botmox-api", "botmox-harness", "pytest"} & set(pins)
    dockerfile = inputs.dockerfile.read_text()
    assert "--require-hashes --no-deps -r /src/requirements.lock.txt" in dockerfile
    assert 'CMD ["python", "-m", "botmox_agent", "run"]' in dockerfile
