"""The emulator as a process: restarts, durability of acknowledged writes, clean shutdown."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from firebase_admin import db

from harness.fixtures.rtdb import firebase_app, unique_namespace
from harness.rtdb.process import EmulatorStartError, RtdbEmulator, RtdbEmulatorProcess

pytestmark = pytest.mark.integration


def test_restart_on_the_same_port_keeps_acknowledged_writes(rtdb_private: RtdbEmulatorProcess) -> None:
    namespace = unique_namespace()
    host = rtdb_private.host
    with firebase_app(rtdb_private.database_url(namespace)) as app:
        root = db.reference("/", app=app)
        root.set({"a": {"b": 1}})
        root.update({"c": [1, 2], "a/d": "x"})
        pushed = root.child("log").push({"n": 1}).key
        assert rtdb_private.stop() == 0  # SIGTERM ended it cleanly
        rtdb_private.start()
        assert rtdb_private.host == host
        assert root.get() == {"a": {"b": 1, "d": "x"}, "c": [1, 2], "log": {pushed: {"n": 1}}}


async def _burst(
    host: str, namespace: str, writes: int, kill_after: int, kill: Callable[[], object]
) -> set[int]:
    """Writes concurrently; ``kill`` runs right after the ``kill_after``-th acknowledgement."""
    acknowledged: set[int] = set()
    limits = httpx.Limits(max_connections=32)
    async with httpx.AsyncClient(
        base_url=f"http://{host}", limits=limits, timeout=10, trust_env=False
    ) as http:

        async def write(index: int) -> None:
            try:
                if index % 2:
                    answer = await http.put(f"/burst/k{index}.json", params={"ns": namespace}, json=index)
                else:
                    patch = {f"k{index}": index}
                    answer = await http.patch("/burst.json", params={"ns": namespace}, json=patch)
            except httpx.TransportError:
                return  # the server was killed before it answered: not acknowledged
            if answer.status_code == 200:
                acknowledged.add(index)
                if len(acknowledged) == kill_after:
                    # Synchronously, so no flush can sneak in between the answer and the kill.
                    kill()

        await asyncio.gather(*(write(index) for index in range(writes)))
    return acknowledged


def test_acknowledged_writes_survive_a_kill_during_a_burst(rtdb_private: RtdbEmulatorProcess) -> None:
    namespace = unique_namespace()
    acknowledged = asyncio.run(_burst(rtdb_private.host, namespace, 400, 150, rtdb_private.kill))
    assert 150 <= len(acknowledged) < 400
    rtdb_private.start()
    with httpx.Client(base_url=f"http://{rtdb_private.host}", trust_env=False) as http:
        stored = http.get("/burst.json", params={"ns": namespace}).json()
    assert isinstance(stored, dict)
    assert {f"k{index}" for index in acknowledged} <= set(stored)
    assert all(stored[f"k{index}"] == index for index in acknowledged)


def test_every_write_of_a_concurrent_burst_survives_a_restart(rtdb_private: RtdbEmulatorProcess) -> None:
    namespace = unique_namespace()
    acknowledged = asyncio.run(_burst(rtdb_private.host, namespace, 200, 0, lambda: None))
    assert acknowledged == set(range(200))
    rtdb_private.stop()
    rtdb_private.start()
    with httpx.Client(base_url=f"http://{rtdb_private.host}", trust_env=False) as http:
        stored = http.get("/burst.json", params={"ns": namespace}).json()
    assert stored == {f"k{index}": index for index in range(200)}


def test_open_streams_end_when_the_server_stops(rtdb_private: RtdbEmulatorProcess) -> None:
    with (
        httpx.Client(base_url=f"http://{rtdb_private.host}", timeout=10, trust_env=False) as http,
        http.stream("GET", "/.json", headers={"Accept": "text/event-stream"}) as stream,
    ):
        lines = stream.iter_lines()
        assert next(lines) == "event: put"
        assert rtdb_private.stop() == 0  # graceful: no SIGKILL was needed
        remaining = list(lines)  # ends: the server finished the response
    assert all(line in ("", "event: keep-alive", "data: null") for line in remaining[1:])


def test_a_damaged_snapshot_refuses_to_start(tmp_path: Path) -> None:
    snapshot = tmp_path / "snapshot.json"
    snapshot.write_text("{ not json")
    emulator = RtdbEmulator(snapshot=snapshot, start_timeout=10)
    with pytest.raises(EmulatorStartError, match="not valid JSON"):
        emulator.start()
    assert emulator.pid is None
    assert snapshot.read_text() == "{ not json"


def test_without_a_snapshot_a_restart_starts_empty(tmp_path: Path) -> None:
    with RtdbEmulator() as emulator:
        with httpx.Client(base_url=f"http://{emulator.host}", trust_env=False) as http:
            http.put("/x.json", json=1)
        emulator.stop()
        emulator.start()
        with httpx.Client(base_url=f"http://{emulator.host}", trust_env=False) as http:
            assert http.get("/x.json").json() is None


def test_an_unwritable_snapshot_location_refuses_to_start(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("")
    emulator = RtdbEmulator(snapshot=blocker / "snapshot.json", start_timeout=10)
    with pytest.raises(EmulatorStartError, match=r"cannot (read|write) snapshot"):
        emulator.start()


def _what_the_emulator_image_holds() -> list[str]:
    """Besides the standard library: uvicorn with what it requires (no extras), and the harness.rtdb
    package alone (harness/docker/rtdb/Dockerfile). The process manager (harness.rtdb.process) runs on
    the host."""
    from importlib import metadata

    from packaging.requirements import Requirement

    required = [Requirement(line) for line in metadata.requires("uvicorn") or ()]
    plain = [r.name.replace("-", "_") for r in required if not r.marker or "extra" not in str(r.marker)]
    return ["uvicorn", *plain, "harness", "harness.rtdb"]


_IMPORT_AS_THE_IMAGE_DOES = """
import importlib, sys
allowed = set(sys.argv[1].split(",")) | set(sys.stdlib_module_names)

class Refuse:
    @staticmethod
    def find_spec(name, path=None, target=None):
        top = name.split(".")[0]
        if top in allowed or name in allowed or name.startswith("harness.rtdb.") or top.startswith("_"):
            return None
        if name.startswith("uvicorn."):
            return None
        raise ModuleNotFoundError(f"the emulator's image has no {name}")

sys.meta_path.insert(0, Refuse)
for module in sys.argv[2:]:
    importlib.import_module(module)
"""


def test_the_emulator_imports_only_what_its_image_holds() -> None:
    """A module of the emulator that imports a library the image lacks (httpx, say) passes every host
    test and fails only in the docker runtime: catch it here, without Docker."""
    import subprocess
    import sys

    package = Path(__file__).resolve().parents[1] / "src" / "harness" / "rtdb"
    host_only = {"process", "__init__"}
    served = sorted(f"harness.rtdb.{p.stem}" for p in package.glob("*.py") if p.stem not in host_only)
    assert "harness.rtdb.server" in served
    assert "harness.rtdb.faults" in served
    holds = ",".join(_what_the_emulator_image_holds())
    result = subprocess.run(
        [sys.executable, "-c", _IMPORT_AS_THE_IMAGE_DOES, holds, *served],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-2000:]
