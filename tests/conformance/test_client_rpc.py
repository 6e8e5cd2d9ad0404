"""RPC through the real clients: argument forms, result shapes, GET calls, errors raised by functions."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from conformance_support import ALICE, Stack, assert_same_error, expect_error, start_stack
from harness import PostgresServer


@pytest.fixture(scope="module")
def stack(postgres: PostgresServer) -> Iterator[Stack]:
    yield from start_stack(postgres, "conf_rpc")


def test_named_arguments_scalar_result(stack: Stack) -> None:
    got = stack.supabase().rpc("add", {"a": 2, "b": 40}).execute().data
    assert got == stack.sql_value("select add(2, 40)") == 42


def test_omitted_arguments_take_their_defaults(stack: Stack) -> None:
    client = stack.supabase()
    assert client.rpc("add_with_default", {"a": 1}).execute().data == stack.sql_value(
        "select add_with_default(1)"
    )
    assert client.rpc("add_with_default", {"a": 1, "b": 2}).execute().data == 3


def test_a_single_unnamed_json_parameter_receives_the_body(stack: Stack) -> None:
    body = {"nested": {"list": [1, "two", None]}, "flag": True}
    assert stack.supabase().rpc("echo", body).execute().data == body


def test_a_named_jsonb_argument(stack: Stack) -> None:
    got = stack.supabase().rpc("tag_count", {"doc": {"tags": ["a", "b", "c"]}}).execute().data
    assert got == stack.sql_value("""select tag_count('{"tags": ["a", "b", "c"]}')""") == 3


def test_set_returning_function_with_filters_order_and_limit(stack: Stack) -> None:
    got = (
        stack.supabase()
        .rpc("films_since", {"min_year": 1970})
        .select("id,title,year")
        .eq("director_id", 1)
        .order("year", desc=True)
        .limit(1)
        .execute()
        .data
    )
    expected = stack.sql(
        "select id, title, year from films_since(1970) where director_id = 1 order by year desc limit 1"
    )
    assert got == expected


def test_set_returning_function_with_an_embed_and_count(stack: Stack) -> None:
    response = (
        stack.supabase()
        .rpc("films_since", {"min_year": 1960}, count="exact")  # type: ignore[arg-type]
        .select("title,directors(last_name)")
        .order("id")
        .execute()
    )
    expected = stack.sql(
        "select f.title,"
        " (select to_json(d) from (select last_name from directors where id = f.director_id) d)"
        " as directors from films_since(1960) f order by f.id"
    )
    assert response.data == expected
    assert response.count == len(expected)


def test_get_style_call(stack: Stack) -> None:
    client = stack.supabase()
    assert client.rpc("add", {"a": 5, "b": 6}, get=True).execute().data == 11
    got = client.rpc("films_since", {"min_year": 1975}, get=True).select("id").order("id").execute().data
    assert got == stack.sql("select id from films_since(1975) order by id")


def test_volatile_function_writes_on_post(stack: Stack) -> None:
    expected = stack.sql("select * from new_director(60, 'Akerman')", user=ALICE)
    got = stack.supabase(user=ALICE).rpc("new_director", {"id": 60, "last_name": "Akerman"}).execute().data
    assert got == expected[0]
    assert stack.sql("select * from directors where id = 60") == expected


def test_volatile_function_under_a_read_only_request_is_405(stack: Stack) -> None:
    expected = stack.sql_error("select new_director(61, 'Denis')", user=ALICE, read_only=True)
    call = stack.supabase(user=ALICE).rpc("new_director", {"id": 61, "last_name": "Denis"}, get=True)
    error = expect_error(call.execute)
    assert stack.status == 405
    assert_same_error(error, expected)
    assert stack.sql("select * from directors where id = 61") == []


def test_raise_sqlstate_ptxyz_sets_the_status(stack: Stack) -> None:
    expected = stack.sql_error("select pay_first()")
    error = expect_error(stack.supabase().rpc("pay_first", {}).execute)
    assert stack.status == 402
    assert stack.responses[-1].reason_phrase == "Payment Required"
    assert_same_error(error, expected)
    assert (error.code, error.details, error.hint) == ("PT402", "Subscribe to read on", "billing")


def test_raise_exception_is_400_p0001(stack: Stack) -> None:
    expected = stack.sql_error("select refuse('too early')")
    error = expect_error(stack.supabase().rpc("refuse", {"reason": "too early"}).execute)
    assert stack.status == 400
    assert_same_error(error, expected)
    assert (error.code, error.message) == ("P0001", "refused: too early")


def test_unknown_function_is_pgrst202(stack: Stack) -> None:
    error = expect_error(stack.supabase().rpc("nope", {"x": 1}).execute)
    assert stack.status == 404
    assert error.code == "PGRST202"
