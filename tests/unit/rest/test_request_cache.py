"""The shape cache's keys and bounds (rest/request_cache.py)."""

from __future__ import annotations

from aiohttp.test_utils import make_mocked_request

from fluxbase.rest.query import Statement
from fluxbase.rest.request.api_request import parse_request
from fluxbase.rest.request_cache import MAX_KEY_CHARS, RequestCache, build_write_plan, write_signature
from fluxbase.rest.schema import SchemaCache


def key(path: str, **headers: str) -> object:
    return RequestCache.key(make_mocked_request("GET", path, headers=headers), "relation", "films")


def test_the_key_holds_the_query_string_and_every_header_the_parse_reads() -> None:
    assert key("/rest/v1/films?id=eq.1") == key("/rest/v1/films?id=eq.1", Authorization="Bearer x")
    assert key("/rest/v1/films?id=eq.1") != key("/rest/v1/films?id=eq.2")
    for header in ("Range", "Prefer", "Accept", "Content-Type", "Accept-Profile", "Content-Profile"):
        assert key("/rest/v1/films?id=eq.1") != key("/rest/v1/films?id=eq.1", **{header: "x"}), header


def test_long_shapes_are_not_kept() -> None:
    assert key("/rest/v1/films?title=eq." + "x" * MAX_KEY_CHARS) is None
    assert key("/rest/v1/films", Prefer="x" * MAX_KEY_CHARS) is None


def test_the_cache_is_bounded_and_forgets_the_least_recently_used() -> None:
    cache = RequestCache(size=2)
    api = parse_request("GET", "relation", "films", [], {})
    cache.put(("a",), api)
    cache.put(("b",), api)
    assert cache.get(("a",)) is not None  # now b is the oldest
    cache.put(("c",), api)
    assert len(cache) == 2 and cache.get(("b",)) is None and cache.get(("a",)) is not None


def test_a_read_plan_is_used_only_with_the_schema_cache_it_was_made_with() -> None:
    cache = RequestCache()
    shape = cache.put(("a",), parse_request("GET", "relation", "films", [], {}))
    first, second = SchemaCache(schemas=("public",)), SchemaCache(schemas=("public",))
    plan: object = object()
    shape.keep_read_plan(first, plan, Statement("select $1", [1]))  # type: ignore[arg-type]
    assert shape.read_plan(second) is None
    kept = shape.read_plan(first)
    assert kept is not None and kept[0] is plan
    kept[1].params.append(2)  # a caller binding more never changes what is kept
    again = shape.read_plan(first)
    assert again is not None and again[1].params == [1]


def test_a_kept_write_statement_takes_each_requests_body() -> None:
    def build(plan: object, body: bytes | None) -> Statement:
        statement = Statement("with x as (select $1::int) select $2::json", [7])
        if body is not None:
            statement.params.append(body.decode())
        return statement

    kept = build_write_plan(object(), b"{}", build)  # type: ignore[arg-type]
    assert kept is not None and kept.body_at == 1
    assert kept.statement_for(b'{"a": 1}').params == [7, '{"a": 1}']
    assert kept.statement_for(b'{"a": 2}').params == [7, '{"a": 2}']
    assert kept.statement.params[1] != '{"a": 1}'  # what is kept never changes


def test_only_a_single_objects_keys_make_a_write_signature() -> None:
    assert write_signature({"a": 1, "b": 2}, True) == ("object", "a", "b")
    assert write_signature({"b": 2, "a": 1}, True) != write_signature({"a": 1, "b": 2}, True)
    assert write_signature([{"a": 1}], True) is None
    assert write_signature(None, False) == ("none",)
    assert write_signature({str(n): n for n in range(1000)}, True) is None
