"""Errors through the real clients: the APIError's code, message, details and hint, and the HTTP status.

Database errors must carry what PostgreSQL itself says for the same statement.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from conformance_support import ALICE, Stack, assert_same_error, expect_error, start_stack
from harness import PostgresServer


@pytest.fixture(scope="module")
def stack(postgres: PostgresServer) -> Iterator[Stack]:
    yield from start_stack(postgres, "conf_errors")


def test_unknown_table_is_pgrst205(stack: Stack) -> None:
    error = expect_error(stack.supabase().table("flims").select("*").execute)
    assert stack.status == 404
    assert error.code == "PGRST205"
    assert error.message == "Could not find the table 'public.flims' in the schema cache"
    assert error.hint == "Perhaps you meant the table 'public.films'"


def test_unknown_column_in_select_is_42703(stack: Stack) -> None:
    expected = stack.sql_error("select films.nope from films")
    error = expect_error(stack.supabase().table("films").select("id,nope").execute)
    assert stack.status == 400
    assert_same_error(error, expected)


def test_unknown_column_in_a_filter_is_42703(stack: Stack) -> None:
    expected = stack.sql_error("select 1 from films where films.nope = 1")
    error = expect_error(stack.supabase().table("films").select("id").eq("nope", 1).execute)
    assert stack.status == 400
    assert_same_error(error, expected)


def test_unknown_column_in_a_write_is_pgrst204(stack: Stack) -> None:
    error = expect_error(stack.supabase(user=ALICE).table("directors").insert({"id": 9, "shoe": 1}).execute)
    assert stack.status == 400
    assert error.code == "PGRST204"
    assert error.message == "Could not find the 'shoe' column of 'directors' in the schema cache"


@pytest.mark.parametrize(
    ("column", "operator", "value"),
    [("id", "eqq", "1"), ("id", "in", "1,2"), ("id", "eq", ""), ("tags", "cs", "{unclosed")],
    ids=["unknown operator", "in without parentheses", "empty eq is fine", "bad array literal"],
)
def test_bad_filter_syntax(stack: Stack, column: str, operator: str, value: str) -> None:
    query = stack.supabase().table("films").select("id").filter(column, operator, value)
    if (operator, value) == ("eq", ""):
        # `id=eq.` compares with '' (invalid for int): PostgreSQL's own 22P02 comes back.
        expected = stack.sql_error("select 1 from films where id = ''")
        assert_same_error(expect_error(query.execute), expected)
    elif operator == "cs":
        expected = stack.sql_error("select 1 from films where tags @> '{unclosed'")
        assert_same_error(expect_error(query.execute), expected)
    else:
        error = expect_error(query.execute)
        assert error.code == "PGRST100"
        assert error.message.startswith('"failed to parse filter')  # type: ignore[union-attr]
    assert stack.status == 400


def test_bad_order_syntax(stack: Stack) -> None:
    error = expect_error(stack.supabase().table("films").select("id").order("id.sideways").execute)
    assert (stack.status, error.code) == (400, "PGRST100")


def test_unique_violation_is_409(stack: Stack) -> None:
    expected = stack.sql_error("insert into directors (id, last_name) values (1, 'again')", user=ALICE)
    error = expect_error(
        stack.supabase(user=ALICE).table("directors").insert({"id": 1, "last_name": "again"}).execute
    )
    assert stack.status == 409
    assert_same_error(error, expected)
    assert error.code == "23505"


def test_not_null_violation_is_400(stack: Stack) -> None:
    expected = stack.sql_error("insert into directors (id, last_name) values (7, null)", user=ALICE)
    error = expect_error(stack.supabase(user=ALICE).table("directors").insert({"id": 7}).execute)
    assert stack.status == 400
    assert_same_error(error, expected)
    assert error.code == "23502"


def test_foreign_key_violation_is_409(stack: Stack) -> None:
    expected = stack.sql_error(
        "insert into gadgets (id, sku, name, director_id) values (50, 'x', 'x', 99)", user=ALICE
    )
    row = {"id": 50, "sku": "x", "name": "x", "director_id": 99}
    error = expect_error(stack.supabase(user=ALICE).table("gadgets").insert(row).execute)
    assert stack.status == 409
    assert_same_error(error, expected)
    assert error.code == "23503"


def test_rls_write_violation_is_403_for_a_user(stack: Stack) -> None:
    expected = stack.sql_error(
        "insert into guestbook (signed_by, message) values ('someone else', 'hi')", user=ALICE
    )
    row = {"signed_by": "someone else", "message": "hi"}
    error = expect_error(stack.supabase(user=ALICE).table("guestbook").insert(row).execute)
    assert stack.status == 403
    assert_same_error(error, expected)
    assert error.code == "42501"


def test_rls_write_violation_is_401_for_anon(stack: Stack) -> None:
    expected = stack.sql_error("insert into guestbook (signed_by, message) values ('alice', 'hi')")
    error = expect_error(
        stack.supabase().table("guestbook").insert({"signed_by": "alice", "message": "hi"}).execute
    )
    assert stack.status == 401
    assert stack.responses[-1].headers["WWW-Authenticate"].startswith("Bearer")
    assert_same_error(error, expected)
    # ... while signing as themselves works
    signed = stack.supabase().table("guestbook").insert({"signed_by": "anon", "message": "hi"}).execute()
    assert [(r["signed_by"], r["message"]) for r in signed.data] == [("anon", "hi")]


def test_missing_grant_is_401_for_anon_and_403_for_a_user(stack: Stack) -> None:
    for client, role, user, status in (
        (stack.supabase(), "anon", None, 401),
        (stack.supabase(user=ALICE), "authenticated", ALICE, 403),
    ):
        expected = stack.sql_error("insert into films (id, title) values (9, 'x')", role=role, user=user)
        error = expect_error(client.table("films").insert({"id": 9, "title": "x"}).execute)
        assert stack.status == status
        assert_same_error(error, expected)


def test_singular_with_zero_and_many_rows(stack: Stack) -> None:
    client = stack.postgrest()
    for query, rows in (
        (client.from_("films").select("id").eq("id", 0), 0),
        (client.from_("films").select("id"), 5),
    ):
        error = expect_error(query.single().execute)
        assert stack.status == 406
        assert (error.code, error.details) == ("PGRST116", f"The result contains {rows} rows")


def test_singular_write_that_affects_many_rows_is_rolled_back(stack: Stack) -> None:
    before = stack.sql("select * from gadgets order by id", user=ALICE)
    query = stack.supabase(user=ALICE).table("gadgets").update({"qty": 0}).gt("id", 0)
    query.request.headers["Accept"] = "application/vnd.pgrst.object+json"
    error = expect_error(query.execute)
    assert (stack.status, error.code) == (406, "PGRST116")
    assert stack.sql("select * from gadgets order by id", user=ALICE) == before


def test_ambiguous_embedding_is_300_pgrst201(stack: Stack) -> None:
    error = expect_error(stack.supabase().table("customers").select("*,addresses(*)").execute)
    assert (stack.status, error.code) == (300, "PGRST201")
    assert isinstance(error.details, list)
    assert len(error.details) == 2


def test_unknown_relationship_is_pgrst200(stack: Stack) -> None:
    error = expect_error(stack.supabase().table("films").select("*,studios(*)").execute)
    assert (stack.status, error.code) == (400, "PGRST200")
    assert error.message == "Could not find a relationship between 'films' and 'studios' in the schema cache"


def test_function_errors_carry_the_function_status(stack: Stack) -> None:
    client = stack.supabase()
    for function, params, sql, status in (
        ("pay_first", {}, "select pay_first()", 402),
        ("refuse", {"reason": "no"}, "select refuse('no')", 400),
    ):
        error = expect_error(client.rpc(function, params).execute)
        assert stack.status == status
        assert_same_error(error, stack.sql_error(sql))
