"""The emulator's data model without a server: values, keys, tree, push ids, queries."""

from __future__ import annotations

import pytest

from harness.rtdb.keys import InvalidRequest, split_path
from harness.rtdb.pushids import PUSH_CHARS, PushIdGenerator
from harness.rtdb.query import parse_query, run_query
from harness.rtdb.tree import Database, Write
from harness.rtdb.values import NULL_ETAG, Node, ServerValues, etag, normalize, parse_body, render


def _values(now_ms: int = 1_700_000_000_000, current: Node | None = None) -> ServerValues:
    return ServerValues(now_ms=now_ms, current=lambda _path: current)


def _stored(raw: object) -> Node | None:
    return normalize(raw, (), _values())


def test_nulls_and_empty_objects_vanish() -> None:
    assert _stored({"a": None, "b": {}, "c": {"d": None}, "e": []}) is None
    assert _stored({"a": 1, "b": {"c": None}}) == {"a": 1}


def test_arrays_are_stored_as_objects_and_served_as_arrays() -> None:
    stored = _stored({"list": ["x", "y", {"z": 1}]})
    assert stored == {"list": {"0": "x", "1": "y", "2": {"z": 1}}}
    assert render(stored) == {"list": ["x", "y", {"z": 1}]}


def test_sparse_integer_keys_follow_the_more_than_half_rule() -> None:
    assert render({"0": "a", "2": "c"}) == ["a", None, "c"]
    assert render({"0": "a", "5": "f"}) == {"0": "a", "5": "f"}
    assert render({"1": "a", "01": "b"}) == {"1": "a", "01": "b"}


def test_integral_floats_are_served_as_integers() -> None:
    assert _stored(2.0) == 2
    assert isinstance(_stored(2.0), int)
    assert _stored(2.5) == 2.5


def test_server_timestamp_is_resolved_anywhere_in_the_body() -> None:
    stored = normalize({"a": {"b": {".sv": "timestamp"}}}, (), _values(now_ms=42))
    assert stored == {"a": {"b": 42}}


def test_server_increment_adds_to_the_current_number() -> None:
    assert normalize({".sv": {"increment": 2}}, ("n",), _values(current=40)) == 42
    assert normalize({".sv": {"increment": 2}}, ("n",), _values(current="text")) == 2


@pytest.mark.parametrize(
    "body",
    [
        {"a.b": 1},
        {"a$": 1},
        {"#": 1},
        {"[x]": 1},
        {"a/b": 1},
        {"": 1},
        {"tab\there": 1},
        {"k" * 769: 1},
        {"ok": {"bad.key": 1}},
        {".sv": "nonsense"},
        {".sv": "timestamp", "other": 1},
        {".priority": 1},
    ],
)
def test_invalid_keys_and_server_values_are_rejected(body: object) -> None:
    with pytest.raises(InvalidRequest) as raised:
        _stored(body)
    assert raised.value.status == 400


def test_the_longest_key_is_accepted() -> None:
    assert _stored({"k" * 768: 1}) == {"k" * 768: 1}


@pytest.mark.parametrize("body", [b"", b"{", b"{'a': 1}", b"NaN", b"[1,]", b"\xff\xfe", b'"\\ud800"'])
def test_malformed_bodies_are_rejected(body: bytes) -> None:
    with pytest.raises(InvalidRequest):
        _stored(parse_body(body))


def test_paths_reject_invalid_segments_and_excess_depth() -> None:
    assert split_path("/a//b/") == ("a", "b")
    with pytest.raises(InvalidRequest):
        split_path("a/b.c")
    with pytest.raises(InvalidRequest):
        split_path("/".join(["x"] * 33))


def test_etag_is_a_hash_of_the_value_and_null_has_the_documented_constant() -> None:
    assert etag(None) == NULL_ETAG
    assert etag({"a": 1, "b": 2}) == etag({"b": 2, "a": 1})
    assert etag({"a": 1}) != etag({"a": 2})


def test_tree_writes_prune_empty_parents_and_keep_namespaces_apart() -> None:
    database = Database()
    database.apply(Write("one", ("a", "b"), (((), "x"),), is_patch=False))
    database.apply(Write("two", ("a",), (((), 1),), is_patch=False))
    database.apply(Write("one", ("a", "b"), (((), None),), is_patch=False))
    assert database.get("one", ()) is None
    assert database.get("two", ("a",)) == 1


def test_tree_write_below_a_leaf_replaces_the_leaf() -> None:
    database = Database()
    database.apply(Write("ns", ("a",), (((), 5),), is_patch=False))
    database.apply(Write("ns", ("a",), ((("b", "c"), 1), (("d",), None)), is_patch=True))
    assert database.get("ns", ("a",)) == {"b": {"c": 1}}


def test_push_ids_are_twenty_characters_and_increase_within_one_millisecond() -> None:
    generator = PushIdGenerator(clock_ms=lambda: 1_700_000_000_000)
    ids = [generator.next_id() for _ in range(500)]
    assert all(len(push_id) == 20 and set(push_id) <= set(PUSH_CHARS) for push_id in ids)
    assert ids == sorted(ids)
    assert len(set(ids)) == len(ids)


def test_push_ids_stay_ordered_when_the_clock_steps_back() -> None:
    readings = iter([2_000, 3_000, 1_000, 4_000])
    generator = PushIdGenerator(clock_ms=lambda: next(readings))
    ids = [generator.next_id() for _ in range(4)]
    assert ids == sorted(ids)
    assert ids[1][:8] == ids[2][:8]


def test_push_id_timestamps_order_across_milliseconds() -> None:
    readings = iter([1_000, 1_001, 70_000, 2**40])
    generator = PushIdGenerator(clock_ms=lambda: next(readings))
    ids = [generator.next_id() for _ in range(4)]
    assert [push_id[:8] for push_id in ids] == sorted(push_id[:8] for push_id in ids)


def _scores() -> Node:
    stored = _stored({"a": {"score": 3}, "b": {"score": 1}, "c": {"score": 2}, "d": {"other": 0}})
    assert stored is not None
    return stored


def test_query_by_child_orders_filters_and_limits() -> None:
    query = parse_query({"orderBy": '"score"', "startAt": "2"})
    assert query is not None
    assert run_query(_scores(), query) == {"a": {"score": 3}, "c": {"score": 2}}
    first = parse_query({"orderBy": '"score"', "limitToFirst": "2"})
    assert first is not None
    result = run_query(_scores(), first)
    assert isinstance(result, dict)
    assert list(result) == ["d", "b"]  # a missing child sorts first, as null


def test_query_by_key_and_by_value() -> None:
    by_key = parse_query({"orderBy": '"$key"', "limitToLast": "2"})
    assert by_key is not None
    result = run_query({"2": "x", "10": "y", "b": "z"}, by_key)
    assert isinstance(result, dict)
    assert list(result) == ["10", "b"]
    by_value = parse_query({"orderBy": '"$value"', "equalTo": '"y"'})
    assert by_value is not None
    assert run_query({"2": "x", "10": "y", "b": "z"}, by_value) == {"10": "y"}


@pytest.mark.parametrize(
    "params",
    [
        {"limitToFirst": "1"},
        {"orderBy": "score"},
        {"orderBy": '"a"', "limitToFirst": "-1"},
        {"orderBy": '"a"', "limitToFirst": "1", "limitToLast": "1"},
        {"orderBy": '"a"', "equalTo": "1", "startAt": "0"},
        {"orderBy": '"$priority"'},
    ],
)
def test_malformed_queries_are_rejected(params: dict[str, str]) -> None:
    with pytest.raises(InvalidRequest):
        parse_query(params)
