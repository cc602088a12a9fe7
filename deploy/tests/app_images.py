"""The application's images for the test hosts, as ``docker save`` archives (the air-gapped path of
``deploy.tasks.docker.image``): the harness's own images of the API, the frontend and PostgreSQL, built
(or reused, by the hash of their inputs) exactly as ``make local`` builds them.

Two more releases are derived from the API's image for the rollout tests: one that differs only by a
label (a new release that works) and one whose API exits at start (a release that fails its health
check).
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

import docker
from docker.errors import APIError, BuildError

from harness.stack.docker.runtime import DockerRuntime
from harness.stack.state import HarnessPaths

# The harness's services whose images a control plane runs (PostgreSQL as the db-only profile's database).
SERVICES = ("postgres", "api", "frontend")
DERIVED_REPOSITORY = "botmox-local/api-release"


class AppImageError(RuntimeError):
    """An image could not be built or saved."""


@dataclass(frozen=True, slots=True)
class SavedImage:
    ref: str  # the tag the host knows it by
    archive: Path  # its docker save file


def build(client: docker.DockerClient, workdir: Path) -> dict[str, str]:
    """The tag of each service's image in ``SERVICES``, built when its inputs changed."""
    runtime = DockerRuntime(HarnessPaths(workdir / "harness"))
    built = runtime.build_images(client, only=SERVICES)
    tags: dict[str, str] = {}
    for service, image_id in built.items():
        image = client.images.get(image_id)
        if not image.tags:
            raise AppImageError(f"the {service} image {image_id} has no tag")
        tags[service] = str(image.tags[0])
    return tags


def derive(client: docker.DockerClient, base_ref: str, name: str, instructions: str) -> str:
    """An image ``FROM base_ref`` plus ``instructions``, tagged ``DERIVED_REPOSITORY:name``."""
    tag = f"{DERIVED_REPOSITORY}:{name}"
    dockerfile = f"FROM {base_ref}\n{instructions}\n"
    try:
        client.images.build(fileobj=io.BytesIO(dockerfile.encode()), tag=tag, rm=True, forcerm=True)
    except (APIError, BuildError) as error:
        raise AppImageError(f"cannot build {tag}: {error}") from error
    return tag


def save(client: docker.DockerClient, ref: str, directory: Path, name: str) -> SavedImage:
    """``docker save`` of ``ref`` into ``directory/name.tar`` (kept with its tag)."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{name}.tar"
    try:
        with path.open("wb") as archive:
            for chunk in client.images.get(ref).save(named=ref):
                archive.write(chunk)
    except APIError as error:
        raise AppImageError(f"cannot save {ref}: {error}") from error
    return SavedImage(ref, path)
