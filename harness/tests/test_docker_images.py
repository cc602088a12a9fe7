"""Image inputs: what is hashed, what is sent as the build context, when an image is reused."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

from harness.postgres_supabase import find_project_root
from harness.stack.description import STACK
from harness.stack.docker_images import CONTEXT_DOCKERFILE, BuildInputs, context_files, context_tar, inputs_of


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
