"""Raw REST requests firebase-admin would never send: malformed input, status codes, headers."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import httpx
import pytest

from harness.fixtures.rtdb import EmulatorFaults, unique_namespace
from harness.rtdb.process import RtdbEmulatorProcess

pytestmark = pytest.mark.integration


@pytest.fixture
def client(rtdb_emulator: RtdbEmulatorProcess, rtdb_namespace: str) -> Iterator[httpx.Client]:
    with httpx.Client(
        base_url=f"http://{rtdb_emulator.host}",
        params={"ns": rtdb_namespace},
        headers={"Authorization": "Bearer owner"},
        timeout=10,
        trust_env=False,
    ) as http:
        yield http


def _seed(client: httpx.Client) -> None:
    assert client.put("/doc.json", json={"a": 1, "list": [1, 2]}).status_code == 200


@pytest.mark.parametrize(
    ("method", "body"),
    [
        ("PUT", b"{not json"),
        ("PUT", b""),
        ("PUT", b"NaN"),
        ("PATCH", b"[1, 2]"),
        ("PATCH", b'"text"'),
        ("POST", b"{"),
        ("PUT", b'{"a": 2, "b.c": 3}'),
        ("PUT", b'{"a": 2, "deep": {"x": {"$bad": 1}}}'),
        ("PATCH", b'{"a": 2, "x/y.z": 1}'),
        ("PATCH", b'{"a": 2, "a/b": 1}'),
        ("PUT", b'{"a": {".sv": "nope"}}'),
    ],
)
def test_bad_bodies_get_400_and_change_nothing(client: httpx.Client, method: str, body: bytes) -> None:
    _seed(client)
    answer = client.request(method, "/doc.json", content=body)
    assert answer.status_code == 400
    assert isinstance(answer.json()["error"], str)
    assert client.get("/doc.json").json() == {"a": 1, "list": [1, 2]}


@pytest.mark.parametrize(
    "path", ["/a.b/c.json", "/a$/c.json", "/a%2Fb.json", "/a/%5Bx%5D.json", "/x%00.json"]
)
def test_invalid_paths_get_400(client: httpx.Client, path: str) -> None:
    answer = client.put(path, json=1)
    assert answer.status_code == 400
    assert "Invalid path" in answer.json()["error"]


def test_paths_must_end_in_json(client: httpx.Client) -> None:
    assert client.get("/doc").status_code == 404


def test_print_silent_answers_204_without_a_body(client: httpx.Client) -> None:
    answer = client.put("/doc.json", params={"print": "silent"}, json={"a": 1})
    assert (answer.status_code, answer.content) == (204, b"")
    assert client.get("/doc.json").json() == {"a": 1}


def test_write_answers_echo_the_stored_data(client: httpx.Client) -> None:
    assert client.put("/doc.json", json={"a": [1, 2], "n": None}).json() == {"a": [1, 2]}
    assert client.patch("/doc.json", json={"b": 2}).json() == {"b": 2}
    pushed = client.post("/doc/items.json", json="x").json()
    assert set(pushed) == {"name"}
    assert client.get(f"/doc/items/{pushed['name']}.json").json() == "x"
    delete = client.delete("/doc.json")
    assert (delete.status_code, delete.json()) == (200, None)


def test_if_match_mismatch_gets_412_with_the_current_value_and_etag(client: httpx.Client) -> None:
    _seed(client)
    current = client.get("/doc.json", headers={"X-Firebase-ETag": "true"})
    tag = current.headers["ETag"]
    refused = client.put("/doc.json", json={"a": 2}, headers={"if-match": "stale"})
    assert refused.status_code == 412
    assert refused.json() == {"a": 1, "list": [1, 2]}
    assert refused.headers["ETag"] == tag
    refused_delete = client.delete("/doc.json", headers={"if-match": "stale"})
    assert refused_delete.status_code == 412
    accepted = client.delete("/doc.json", headers={"if-match": tag})
    assert accepted.status_code == 200
    assert accepted.headers["ETag"] == "null_etag"
    assert client.get("/doc.json").json() is None


def test_if_none_match_answers_304_when_unchanged_and_the_etag_when_changed(client: httpx.Client) -> None:
    _seed(client)
    tag = client.get("/doc.json", headers={"X-Firebase-ETag": "true"}).headers["ETag"]
    unchanged = client.get("/doc.json", headers={"if-none-match": tag})
    assert (unchanged.status_code, unchanged.content, unchanged.headers["ETag"]) == (304, b"", tag)
    assert client.put("/doc/a.json", json=2).status_code == 200
    changed = client.get("/doc.json", headers={"if-none-match": tag})
    assert changed.status_code == 200
    assert changed.json() == {"a": 2, "list": [1, 2]}
    assert (
        changed.headers["ETag"]
        == client.get("/doc.json", headers={"X-Firebase-ETag": "true"}).headers["ETag"]
    )
    assert changed.headers["ETag"] != tag


def test_if_match_null_etag_creates_only_when_absent(client: httpx.Client) -> None:
    assert client.put("/new.json", json=1, headers={"if-match": "null_etag"}).status_code == 200
    assert client.put("/new.json", json=2, headers={"if-match": "null_etag"}).status_code == 412
    assert client.get("/new.json").json() == 1


def test_namespace_defaults_when_absent_and_invalid_namespaces_are_refused(
    rtdb_emulator: RtdbEmulatorProcess,
) -> None:
    with httpx.Client(base_url=f"http://{rtdb_emulator.host}", trust_env=False) as http:
        assert http.get("/.json", params={"ns": "bad namespace!"}).status_code == 400
        assert http.get("/.json", params={"shallow": "true"}).status_code == 200


def test_unsupported_features_are_refused_clearly(client: httpx.Client) -> None:
    answer = client.get("/doc.json", params={"format": "export"})
    assert answer.status_code == 400
    assert "not supported" in answer.json()["error"]


def test_method_override_header(client: httpx.Client) -> None:
    _seed(client)
    answer = client.post("/doc/a.json", headers={"X-HTTP-Method-Override": "DELETE"})
    assert answer.status_code == 200
    assert client.get("/doc.json").json() == {"list": [1, 2]}


def test_stream_starts_with_the_current_value(client: httpx.Client) -> None:
    _seed(client)
    with client.stream("GET", "/doc.json", headers={"Accept": "text/event-stream"}) as stream:
        assert stream.headers["content-type"].startswith("text/event-stream")
        lines = stream.iter_lines()
        assert next(lines) == "event: put"
        assert next(lines) == 'data: {"path":"/","data":{"a":1,"list":[1,2]}}'


def test_drop_answer_applies_the_write_and_sends_no_answer(
    client: httpx.Client, rtdb_faults: EmulatorFaults
) -> None:
    _seed(client)
    rtdb_faults.drop_answer("PUT", "doc/a")
    assert rtdb_faults.armed() == [{"kind": "drop_answer", "method": "PUT", "path": "doc/a", "remaining": 1}]
    with pytest.raises(httpx.ReadTimeout):
        client.put("/doc/a.json", json=2, timeout=0.5)
    # Applied (and durable) although unanswered; the fault is used up, the next write is answered.
    assert client.get("/doc.json").json() == {"a": 2, "list": [1, 2]}
    assert rtdb_faults.armed() == []
    assert client.put("/doc/a.json", json=3).status_code == 200


def test_drop_answer_matches_method_path_and_namespace_and_spares_refusals(
    client: httpx.Client, rtdb_faults: EmulatorFaults, rtdb_emulator: RtdbEmulatorProcess
) -> None:
    _seed(client)
    rtdb_faults.drop_answer("PUT", "doc", times=2)
    assert client.patch("/doc.json", json={"a": 5}).status_code == 200  # another method
    assert client.put("/doc/a.json", json=6).status_code == 200  # another path
    other = client.put("/doc.json", json=7, params={"ns": unique_namespace()})  # another namespace
    assert other.status_code == 200
    assert client.put("/doc.json", json=8, headers={"if-match": "stale"}).status_code == 412  # refused
    assert client.put("/doc.json", content=b"{bad").status_code == 400
    assert rtdb_faults.armed()[0]["remaining"] == 2
    with pytest.raises(httpx.ReadTimeout):
        client.put("/doc.json", json=9, timeout=0.5)
    assert rtdb_faults.armed()[0]["remaining"] == 1
    rtdb_faults.clear()
    assert rtdb_faults.armed() == []
    assert client.put("/doc.json", json=10).status_code == 200


def test_drop_answer_on_a_read(client: httpx.Client, rtdb_faults: EmulatorFaults) -> None:
    _seed(client)
    rtdb_faults.drop_answer("GET", "doc")
    with pytest.raises(httpx.ReadTimeout):
        client.get("/doc.json", timeout=0.5)
    assert client.get("/doc.json").json() == {"a": 1, "list": [1, 2]}


@pytest.mark.parametrize(
    "spec",
    [
        b"{",
        b"[]",
        b'{"kind": "crash", "method": "PUT", "path": "a"}',
        b'{"kind": "drop_answer", "method": "HEAD", "path": "a"}',
        b'{"kind": "drop_answer", "method": "PUT", "path": 1}',
        b'{"kind": "drop_answer", "method": "PUT", "path": "a.b"}',
        b'{"kind": "drop_answer", "method": "PUT", "path": "a", "times": 0}',
        b'{"kind": "drop_answer", "method": "PUT", "path": "a", "times": true}',
        b'{"kind": "latency"}',
        b'{"kind": "latency", "ms": -1}',
        b'{"kind": "latency", "ms": "40"}',
        b'{"kind": "latency", "ms": true}',
        b'{"kind": "latency", "ms": 600000}',
    ],
)
def test_bad_fault_specs_get_400(client: httpx.Client, spec: bytes) -> None:
    answer = client.post("/.harness/faults", content=spec)
    assert answer.status_code == 400
    assert isinstance(answer.json()["error"], str)
    assert client.get("/.harness/faults").json() == []


def test_unknown_control_paths_get_404(client: httpx.Client) -> None:
    assert client.get("/.harness/nothing").status_code == 404
    assert client.put("/.harness/faults").status_code == 405


LATENCY_MS = 1000
CONCURRENT = 8


async def _timed_gets(host: str, namespace: str, count: int) -> tuple[list[float], float]:
    """``count`` concurrent GETs on fresh connections: each one's duration, and the whole batch's."""
    async with httpx.AsyncClient(
        base_url=f"http://{host}", params={"ns": namespace}, timeout=30, trust_env=False
    ) as http:

        async def one() -> float:
            began = time.monotonic()
            answer = await http.get("/doc.json")
            assert answer.json() == {"a": 1, "list": [1, 2]}
            return time.monotonic() - began

        began = time.monotonic()
        durations = await asyncio.gather(*(one() for _ in range(count)))
        return durations, time.monotonic() - began


def test_latency_delays_every_answer_of_the_namespace_concurrently(
    client: httpx.Client, rtdb_faults: EmulatorFaults, rtdb_emulator: RtdbEmulatorProcess, rtdb_namespace: str
) -> None:
    _seed(client)
    rtdb_faults.latency(LATENCY_MS)
    assert rtdb_faults.armed() == [{"kind": "latency", "ms": LATENCY_MS}]

    durations, batch = asyncio.run(_timed_gets(rtdb_emulator.host, rtdb_namespace, CONCURRENT))
    # asyncio.sleep never wakes early, so each answer is at least that late. Served one after
    # another, the batch would take CONCURRENT times as long; the bound sits halfway.
    assert min(durations) >= LATENCY_MS / 1000
    assert batch < CONCURRENT * LATENCY_MS / 1000 / 2
    # Writes and refusals are late too; they are served as usual.
    began = time.monotonic()
    assert client.put("/doc/a.json", json=2).status_code == 200
    assert client.put("/doc.json", content=b"{bad").status_code == 400
    assert time.monotonic() - began >= 2 * LATENCY_MS / 1000

    # Another namespace and the control requests answer at once.
    other = client.put("/doc.json", json=7, params={"ns": unique_namespace()})
    assert other.status_code == 200
    assert other.elapsed.total_seconds() < LATENCY_MS / 1000
    rtdb_faults.clear()
    assert rtdb_faults.armed() == []
    assert client.get("/doc.json").elapsed.total_seconds() < LATENCY_MS / 1000


def test_latency_is_replaced_by_a_new_one_and_removed_by_zero(
    client: httpx.Client, rtdb_faults: EmulatorFaults
) -> None:
    rtdb_faults.drop_answer("PUT", "doc")
    rtdb_faults.latency(40)
    rtdb_faults.latency(25.5)
    assert rtdb_faults.armed() == [
        {"kind": "drop_answer", "method": "PUT", "path": "doc", "remaining": 1},
        {"kind": "latency", "ms": 25.5},
    ]
    rtdb_faults.latency(0)
    assert rtdb_faults.armed() == [{"kind": "drop_answer", "method": "PUT", "path": "doc", "remaining": 1}]
