"""The emulator through firebase-admin, the client the API uses: no mocks, a real process."""

from __future__ import annotations

import queue
import time
from typing import Any

import firebase_admin
import pytest
from firebase_admin import db, exceptions

from harness.fixtures.rtdb import EmulatorFaults, close_listener, firebase_app, unique_namespace
from harness.rtdb.process import RtdbEmulatorProcess

pytestmark = pytest.mark.integration


def _ref(app: firebase_admin.App, path: str = "/") -> db.Reference:
    return db.reference(path, app=app)


def test_set_get_and_delete(rtdb_app: firebase_admin.App) -> None:
    ref = _ref(rtdb_app, "/tenants/t1/settings")
    ref.set({"alerts": {"warning_days": 7}, "name": "x"})
    assert ref.get() == {"alerts": {"warning_days": 7}, "name": "x"}
    assert ref.child("alerts/warning_days").get() == 7
    ref.child("name").delete()
    assert ref.get() == {"alerts": {"warning_days": 7}}
    ref.delete()
    assert ref.get() is None
    assert _ref(rtdb_app).get() is None  # the emptied parents vanished too


def test_null_members_and_empty_objects_are_not_stored(rtdb_app: firebase_admin.App) -> None:
    ref = _ref(rtdb_app, "/node")
    ref.set({"keep": 1, "gone": None, "empty": {}, "nested": {"also": None}})
    assert ref.get() == {"keep": 1}


def test_multi_location_update_is_applied_whole(rtdb_app: firebase_admin.App) -> None:
    root = _ref(rtdb_app)
    root.set({"a": {"b": 1, "keep": True}, "c": 2})
    root.update({"a/b": 10, "c": None, "d/e": "new"})
    assert root.get() == {"a": {"b": 10, "keep": True}, "d": {"e": "new"}}


def test_push_ids_sort_in_creation_order(rtdb_app: firebase_admin.App) -> None:
    messages = _ref(rtdb_app, "/messages")
    pushed = [messages.push({"n": index}).key for index in range(30)]
    assert all(isinstance(key, str) and len(key) == 20 for key in pushed)
    assert pushed == sorted(pushed)
    stored = messages.get()
    assert isinstance(stored, dict)
    assert [stored[key]["n"] for key in sorted(stored)] == list(range(30))


def test_transaction_retries_when_a_concurrent_writer_wins(rtdb_app: firebase_admin.App) -> None:
    counter = _ref(rtdb_app, "/counter")
    counter.set(1)
    seen: list[Any] = []

    def increment(current: Any) -> Any:
        seen.append(current)
        if len(seen) == 1:
            # Another writer changes the value between the transaction's read and its write.
            _ref(rtdb_app, "/counter").set(100)
        return current + 1

    assert counter.transaction(increment) == 101
    assert seen == [1, 100]
    assert counter.get() == 101


def test_transaction_on_a_missing_node_starts_from_none(rtdb_app: firebase_admin.App) -> None:
    node = _ref(rtdb_app, "/fresh")
    assert node.transaction(lambda current: {"created": current is None}) == {"created": True}
    assert node.get() == {"created": True}


def test_get_with_etag_and_set_if_unchanged(rtdb_app: firebase_admin.App) -> None:
    ref = _ref(rtdb_app, "/doc")
    value, missing_etag = ref.get(etag=True)
    assert value is None
    assert missing_etag == "null_etag"
    ref.set({"v": 1})
    value, tag = ref.get(etag=True)
    assert value == {"v": 1}
    assert tag not in (None, "null_etag")

    written, current, new_tag = ref.set_if_unchanged(tag, {"v": 2})
    assert (written, current) == (True, {"v": 2})
    assert new_tag == ref.get(etag=True)[1]

    refused, current, current_tag = ref.set_if_unchanged(tag, {"v": 3})
    assert (refused, current, current_tag) == (False, {"v": 2}, new_tag)
    assert ref.get() == {"v": 2}


def test_get_if_changed_uses_the_etag(rtdb_app: firebase_admin.App) -> None:
    ref = _ref(rtdb_app, "/cached")
    ref.set("a")
    _, tag = ref.get(etag=True)
    assert ref.get_if_changed(tag) == (False, None, None)
    ref.set("b")
    changed, value, new_tag = ref.get_if_changed(tag)
    # RTDB sends the new value's ETag with it, so the caller can cache both.
    _, current_tag = ref.get(etag=True)
    assert (changed, value, new_tag) == (True, "b", current_tag)
    assert ref.get_if_changed(new_tag) == (False, None, None)


def test_shallow_get_truncates_children(rtdb_app: firebase_admin.App) -> None:
    ref = _ref(rtdb_app, "/tree")
    ref.set({"a": {"deep": {"deeper": 1}}, "b": 2})
    assert ref.get(shallow=True) == {"a": True, "b": True}
    assert ref.child("b").get(shallow=True) == 2


def test_arrays_round_trip(rtdb_app: firebase_admin.App) -> None:
    ref = _ref(rtdb_app, "/list")
    ref.set(["a", {"b": [1, 2]}, 3.0])
    assert ref.get() == ["a", {"b": [1, 2]}, 3]
    assert ref.child("1/b/0").get() == 1
    ref.child("1").delete()
    assert ref.get() == ["a", None, 3]


def test_server_timestamp_is_filled_in(rtdb_app: firebase_admin.App) -> None:
    before = int(time.time() * 1000)
    ref = _ref(rtdb_app, "/stamped")
    ref.set({"at": {".sv": "timestamp"}, "nested": {"at": {".sv": "timestamp"}}})
    after = int(time.time() * 1000)
    value = ref.get()
    assert isinstance(value, dict)
    assert before <= value["at"] <= after
    assert value["nested"]["at"] == value["at"]


def test_ordered_queries(rtdb_app: firebase_admin.App) -> None:
    ref = _ref(rtdb_app, "/scores")
    ref.set({"ann": {"score": 5}, "bob": {"score": 9}, "cid": {"score": 7}})
    top = ref.order_by_child("score").limit_to_last(2).get()
    assert list(top) == ["cid", "bob"]
    assert list(ref.order_by_key().start_at("b").get()) == ["bob", "cid"]


def test_invalid_key_is_refused_by_the_server_and_nothing_is_stored(rtdb_app: firebase_admin.App) -> None:
    ref = _ref(rtdb_app, "/guarded")
    ref.set({"ok": 1})
    with pytest.raises(exceptions.InvalidArgumentError) as raised:
        ref.set({"ok": 2, "nested": {"bad.key": 1}})
    assert "key" in str(raised.value)
    with pytest.raises(exceptions.InvalidArgumentError):
        ref.update({"ok": 3, "bad#key": 1})
    assert ref.get() == {"ok": 1}


def test_two_namespaces_stay_apart(rtdb_emulator: RtdbEmulatorProcess) -> None:
    first, second = unique_namespace(), unique_namespace()
    with (
        firebase_app(rtdb_emulator.database_url(first)) as one,
        firebase_app(rtdb_emulator.database_url(second)) as two,
    ):
        _ref(one, "/shared/path").set("from one")
        _ref(two, "/shared/path").set("from two")
        _ref(two, "/only-two").set(True)
        assert _ref(one).get() == {"shared": {"path": "from one"}}
        assert _ref(two).get() == {"shared": {"path": "from two"}, "only-two": True}
        _ref(one).delete()
        assert _ref(two, "/shared/path").get() == "from two"


def test_stock_client_replays_a_write_whose_answer_was_lost(
    rtdb_emulator: RtdbEmulatorProcess, rtdb_namespace: str, rtdb_faults: EmulatorFaults
) -> None:
    """Why the API's stores send writes once: firebase-admin's own session re-sends a write whose
    answer timed out, so a write that had landed is applied a second time."""
    with firebase_app(rtdb_emulator.database_url(rtdb_namespace), httpTimeout=0.5) as app:
        ref = _ref(app, "/counter")
        rtdb_faults.drop_answer("PATCH", "counter")
        ref.update({"n": {".sv": {"increment": 1}}})
        assert ref.get() == {"n": 2}


def _next_event(events: queue.Queue[tuple[str, str, Any]]) -> tuple[str, str, Any]:
    return events.get(timeout=10)


def test_listen_receives_put_and_patch_events(rtdb_app: firebase_admin.App) -> None:
    ref = _ref(rtdb_app, "/watched/node")
    ref.set({"a": 1})
    events: queue.Queue[tuple[str, str, Any]] = queue.Queue()
    registration = ref.listen(lambda event: events.put((event.event_type, event.path, event.data)))
    try:
        assert _next_event(events) == ("put", "/", {"a": 1})
        ref.child("b").set({"c": 2})
        assert _next_event(events) == ("put", "/b", {"c": 2})
        ref.update({"a": 5, "d": None})
        assert _next_event(events) == ("patch", "/", {"a": 5, "d": None})
        _ref(rtdb_app, "/watched/elsewhere").set("ignored")
        _ref(rtdb_app, "/watched").update({"node/a": 6})
        assert _next_event(events) == ("put", "/a", 6)
        _ref(rtdb_app, "/watched").set({"node": "replaced"})
        assert _next_event(events) == ("put", "/", "replaced")
        ref.delete()
        assert _next_event(events) == ("put", "/", None)
    finally:
        close_listener(registration)
    assert events.empty()


def test_unicode_and_spaces_in_keys_and_values(rtdb_app: firebase_admin.App) -> None:
    ref = _ref(rtdb_app, "/i18n/ключ с пробелом")
    ref.set({"名前": "zoë 🚀", "a b": "x"})
    assert ref.get() == {"名前": "zoë 🚀", "a b": "x"}
    assert _ref(rtdb_app, "/i18n").get(shallow=True) == {"ключ с пробелом": True}


def test_emulator_host_variable_with_a_production_style_url(
    rtdb_emulator: RtdbEmulatorProcess, rtdb_namespace: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FIREBASE_DATABASE_EMULATOR_HOST", rtdb_emulator.host)
    with (
        firebase_app(f"https://{rtdb_namespace}.firebaseio.com") as production_style,
        firebase_app(rtdb_emulator.database_url(rtdb_namespace)) as explicit,
    ):
        _ref(production_style, "/via/env").set(1)
        assert _ref(explicit, "/via/env").get() == 1
