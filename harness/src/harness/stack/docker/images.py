"""Service images: built from the description's Dockerfile and context, labelled with a hash of
their inputs, and reused while that hash is unchanged (a second ``up`` builds nothing).

The inputs are the Dockerfile, every file of the build context (caches such as ``__pycache__``
left out), the files the harness generates for it and the base image's id. The harness sends
exactly the hashed files as the build context (a tar it makes itself, with the Dockerfile under a
reserved name), so what is hashed is what is built.

Generated: for an image whose description names a ``locked_package``, ``requirements.lock.txt``
holds that package's uv.lock pins with their hashes (``uv export --frozen``, no dev dependencies,
no workspace packages), so the image installs exactly what the tests ran against, not the version
ranges of its pyproject.toml. It is made at build time and never committed; a change of a pin in
uv.lock changes the image's hash.

Workspace packages: an image whose description names ``workspace_packages`` (project-relative
directories of uv workspace packages, such as ``services/protocol``) gets a copy of each under
``workspace/<directory name>/`` of its build context (``WORKSPACE_DIR``: its ``pyproject.toml`` and
``src/``), hashed like the context's own files, so a change in ``services/protocol`` rebuilds every
image that installs it. The Dockerfile installs them (``pip install --no-deps``) before the
service's own package; the locked requirements leave them out (``--no-emit-workspace``). A
``workspace/`` directory left in a source context is never sent: the copies are the harness's.
"""

from __future__ import annotations

import hashlib
import io
import os
import shutil
import subprocess
import tarfile
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import docker
from docker.errors import APIError, BuildError, ImageNotFound

from harness.stack.description import ServiceSpec

HASH_LABEL = "org.botmox.inputs-hash"
SERVICE_LABEL = "org.botmox.service"
REPOSITORY_PREFIX = "botmox-local/"
CONTEXT_DOCKERFILE = ".botmox.Dockerfile"
# Never part of an image's inputs: caches and tool state that change without the sources changing.
EXCLUDED_DIRECTORIES = frozenset(
    {"__pycache__", ".pytest_cache", ".mypy_cache", ".ruff_cache", ".venv", ".git", "node_modules"}
)
EXCLUDED_SUFFIXES = (".pyc", ".pyo")
# Local configuration with secrets (services/api/.env) never goes into a build context.
EXCLUDED_FILES = frozenset({".env"})
LOCKED_REQUIREMENTS = "requirements.lock.txt"
WORKSPACE_DIR = "workspace"
_CHUNK = 1 << 16


class ImageBuildFailed(RuntimeError):
    """``docker build`` failed; the message carries the end of its output."""


@dataclass(frozen=True, slots=True)
class BuildInputs:
    service: str
    context: Path
    dockerfile: Path
    files: tuple[str, ...]  # relative to context, sorted, POSIX separators
    base_image: str
    base_image_id: str
    generated: tuple[tuple[str, bytes], ...] = ()  # (name in the context, content), sorted
    # Workspace packages copied into the context: (name in the context, the package's directory,
    # its files relative to that directory), in the description's order.
    workspace: tuple[tuple[str, Path, tuple[str, ...]], ...] = ()

    def sources(self) -> tuple[tuple[str, Path], ...]:
        """Every file of the context as (name in the context, where it is read from)."""
        own = tuple((relative, self.context / relative) for relative in self.files)
        copied = tuple(
            (f"{prefix}/{relative}", root / relative)
            for prefix, root, files in self.workspace
            for relative in files
        )
        return own + copied

    @property
    def repository(self) -> str:
        return f"{REPOSITORY_PREFIX}{self.service}"

    def digest(self) -> str:
        return inputs_hash(self.dockerfile.read_bytes(), self.sources(), self.base_image_id, self.generated)

    def tag(self) -> str:
        return f"{self.repository}:{self.digest()[:16]}"


def inputs_of(spec: ServiceSpec, project_root: Path, base_image: str, base_image_id: str) -> BuildInputs:
    context = project_root / spec.image.context
    generated: tuple[tuple[str, bytes], ...] = ()
    if spec.image.locked_package:
        generated = ((LOCKED_REQUIREMENTS, locked_requirements(project_root, spec.image.locked_package)),)
    names = {name for name, _ in generated}
    workspace = tuple(
        (workspace_prefix(package), project_root / package, package_files(project_root / package))
        for package in spec.image.workspace_packages
    )
    return BuildInputs(
        service=spec.name,
        context=context,
        dockerfile=project_root / spec.image.dockerfile,
        # A generated file wins over a stale copy of it in the source tree; so do the workspace copies.
        files=tuple(
            f
            for f in context_files(context)
            if f not in names and not (workspace and f.startswith(f"{WORKSPACE_DIR}/"))
        ),
        base_image=base_image,
        base_image_id=base_image_id,
        generated=generated,
        workspace=workspace,
    )


def workspace_prefix(package: str) -> str:
    """Where a workspace package (a project-relative directory) lands in a build context."""
    return f"{WORKSPACE_DIR}/{PurePosixPath(package).name}"


def _uv() -> str:
    # `uv run` names its own binary in $UV; otherwise the one on PATH.
    found = os.environ.get("UV") or shutil.which("uv")
    if not found:
        raise ImageBuildFailed("uv is needed to export the uv.lock pins for an image; run `make bootstrap`")
    return found


def export_arguments(package: str) -> list[str]:
    """``uv`` arguments that print ``package``'s runtime pins from uv.lock, with hashes, as a pip
    requirements file (no dev dependencies, no workspace packages: the image installs those itself)."""
    return ["export", "--frozen", "--package", package, "--no-dev", "--no-emit-workspace", "--no-header"]


def locked_requirements(project_root: Path, package: str) -> bytes:
    command = [_uv(), *export_arguments(package), "--quiet"]
    result = subprocess.run(command, cwd=project_root, capture_output=True, check=False)  # noqa: S603
    if result.returncode != 0:
        stderr = result.stderr.decode(errors="replace").strip()
        raise ImageBuildFailed(f"`uv export` for {package} failed: {stderr}")
    return result.stdout


def package_files(root: Path) -> tuple[str, ...]:
    """What pip needs to install a workspace package: its pyproject.toml and its ``src/`` tree (its
    tests and notes are no input of an image)."""
    if not (root / "pyproject.toml").is_file():
        raise ImageBuildFailed(f"{root} is no Python package (no pyproject.toml)")
    return ("pyproject.toml", *(f"src/{name}" for name in context_files(root / "src")))


def context_files(context: Path) -> tuple[str, ...]:
    """Every regular file under ``context`` except caches, sorted (the hash depends on the order)."""
    found: list[str] = []
    for directory, subdirectories, files in os.walk(context):
        subdirectories[:] = sorted(d for d in subdirectories if d not in EXCLUDED_DIRECTORIES)
        for name in files:
            path = Path(directory) / name
            if name in EXCLUDED_FILES or name.endswith(EXCLUDED_SUFFIXES):
                continue
            if path.is_symlink() or not path.is_file():
                continue
            found.append(path.relative_to(context).as_posix())
    return tuple(sorted(found))


def _is_executable(path: Path) -> bool:
    return bool(path.stat().st_mode & 0o111)


def inputs_hash(
    dockerfile: bytes,
    sources: tuple[tuple[str, Path], ...],
    base_image_id: str,
    generated: tuple[tuple[str, bytes], ...] = (),
) -> str:
    """sha256 over the Dockerfile, each context file's name, executable bit and bytes (workspace
    copies and generated files too), and the base id."""
    digest = hashlib.sha256()

    def field(tag: bytes, value: bytes) -> None:
        digest.update(tag + b"\0" + str(len(value)).encode() + b"\0" + value)

    field(b"dockerfile", dockerfile)
    field(b"base", base_image_id.encode())
    for name, path in sources:
        field(b"path", name.encode())
        field(b"mode", b"x" if _is_executable(path) else b"-")
        field(b"content", hashlib.sha256(path.read_bytes()).digest())
    for name, content in generated:
        field(b"path", name.encode())
        field(b"mode", b"-")
        field(b"content", hashlib.sha256(content).digest())
    return digest.hexdigest()


def context_tar(inputs: BuildInputs) -> io.BytesIO:
    """The build context: the hashed and generated files with fixed owners and times, plus the Dockerfile."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        for name, path in inputs.sources():
            _add(archive, name, path.read_bytes(), executable=_is_executable(path))
        for name, content in inputs.generated:
            _add(archive, name, content, executable=False)
        _add(archive, CONTEXT_DOCKERFILE, inputs.dockerfile.read_bytes(), executable=False)
    buffer.seek(0)
    return buffer


def _add(archive: tarfile.TarFile, name: str, data: bytes, *, executable: bool) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = 0o755 if executable else 0o644
    info.mtime = 0
    archive.addfile(info, io.BytesIO(data))


def existing(client: docker.DockerClient, inputs: BuildInputs) -> str | None:
    """The id of an image built from these very inputs, if the daemon has one."""
    try:
        image = client.images.get(inputs.tag())
    except ImageNotFound:
        return None
    image_id: str = image.id
    return image_id if image.labels.get(HASH_LABEL) == inputs.digest() else None


def build(
    client: docker.DockerClient,
    inputs: BuildInputs,
    *,
    build_args: Mapping[str, str],
    log_path: Path,
    on_line: Callable[[str], None],
) -> str:
    """Build (layer cache on, host network for apt and pip); returns the image id."""
    digest = inputs.digest()
    tag = f"{inputs.repository}:{digest[:16]}"
    tail: list[str] = []
    image_id = ""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("w") as log:
        try:
            for line in _stream(client, inputs, tag, digest, build_args):
                log.write(line + "\n")
                tail = [*tail[-40:], line]
                on_line(line)
                if line.startswith("sha256:"):
                    image_id = line
        except (APIError, BuildError) as error:
            raise ImageBuildFailed(f"building {tag} failed: {error}; log {log_path}") from error
    if not image_id or not _has_error_free_tail(tail):
        raise ImageBuildFailed(f"building {tag} failed; log {log_path}:\n" + "\n".join(tail[-15:]))
    _remove_older(client, inputs.repository, keep=tag)
    return image_id


def _has_error_free_tail(tail: list[str]) -> bool:
    return not any(line.startswith("ERROR:") for line in tail)


def _stream(
    client: docker.DockerClient, inputs: BuildInputs, tag: str, digest: str, build_args: Mapping[str, str]
) -> Iterator[str]:
    chunks = client.api.build(
        fileobj=context_tar(inputs),
        custom_context=True,
        dockerfile=CONTEXT_DOCKERFILE,
        tag=tag,
        labels={HASH_LABEL: digest, SERVICE_LABEL: inputs.service},
        buildargs=dict(build_args),
        network_mode="host",
        rm=True,
        forcerm=True,
        pull=False,
        decode=True,
    )
    for chunk in chunks:
        if "error" in chunk:
            yield f"ERROR: {chunk['error']}".rstrip()
        elif "stream" in chunk:
            for line in str(chunk["stream"]).splitlines():
                if line.strip():
                    yield line.rstrip()
        elif "aux" in chunk and isinstance(chunk["aux"], dict) and "ID" in chunk["aux"]:
            yield str(chunk["aux"]["ID"])


def _remove_older(client: docker.DockerClient, repository: str, keep: str) -> None:
    """Older builds of the same service only take space; one still in use by a container stays."""
    for image in client.images.list(name=repository):
        if keep in image.tags:
            continue
        for tag in image.tags:
            try:
                client.images.remove(tag, noprune=False)
            except APIError:
                continue
