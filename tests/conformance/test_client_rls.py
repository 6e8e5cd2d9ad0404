"""RLS through the real clients: with `user_id = auth.uid()`, Alice never reaches Bob's todos.

One test per path (filters, embedding, RPC, upsert, bulk writes, update, delete), each
checked against what PostgreSQL answers Alice for the same statement; anon sees only
what its grants allow.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from conformance_support import ALICE, BOB, Stack, assert_same_error, expect_error, start_stack
from harness import PostgresServer

TODOS = """
delete from todos;
insert into todos values
  (1, 'aaaaaaaa-0000-0000-0000-00000000000a', 1, 'alice: dishes', false),
  (2, 'aaaaaaaa-0000-0000-0000-00000000000a', 2, 'alice: report', true),
  (3, 'bbbbbbbb-0000-0000-0000-00000000000b', 1, 'bob: garden', false),
  (4, 'bbbbbbbb-0000-0000-0000-00000000000b', 2, 'bob: secret plan', false);
"""


@pytest.fixture(scope="module")
def stack(postgres: PostgresServer) -> Iterator[Stack]:
    yield from start_stack(postgres, "conf_rls")


@pytest.fixture(autouse=True)
def fresh_todos(stack: Stack) -> None:
    stack.owner(TODOS)


def all_todos(stack: Stack) -> object:
    return stack.sql("select * from todos order by id", role="service_role")


def test_alice_reads_only_her_rows(stack: Stack) -> None:
    got = stack.supabase(user=ALICE).table("todos").select("*").order("id").execute().data
    assert got == stack.sql("select * from todos order by id", user=ALICE)
    assert {row["user_id"] for row in got} == {ALICE}


@pytest.mark.parametrize(
    ("case", "where"),
    [
        ("eq user", f"user_id.eq.{BOB}"),
        ("eq id", "id.eq.3"),
        ("ilike", "title.ilike.bob*"),
        ("in", "id.in.(3,4)"),
    ],
)
def test_filters_never_reach_bobs_rows(stack: Stack, case: str, where: str) -> None:
    client = stack.supabase(user=ALICE).table("todos")
    got = client.select("*").or_(where).execute().data
    column, operator, value = where.split(".", 2)
    assert got == [] == stack.sql("select * from todos where user_id = %s", (BOB,), user=ALICE), case
    # the negation neither: everything Alice gets is hers
    negated = client.select("user_id").not_.filter(column, operator, value).execute().data
    assert {row["user_id"] for row in negated} <= {ALICE}


def test_embedding_never_reaches_bobs_rows(stack: Stack) -> None:
    client = stack.supabase(user=ALICE)
    profiles = client.table("profiles").select("name,todos(title)").order("name").execute().data
    assert profiles == stack.sql(
        "select name, (select coalesce(json_agg(t), '[]') from (select title from todos"
        " where user_id = p.user_id) t) as todos from profiles p order by name",
        user=ALICE,
    )
    assert profiles[1] == {"name": "Bob", "todos": []}
    projects = (
        client.table("projects").select("name,todos!inner(title)").ilike("todos.title", "bob*").execute().data
    )
    assert projects == []
    # to-one from Bob's side: Alice cannot reach Bob's todos through his profile either
    bob = client.table("profiles").select("todos!inner(id)").eq("user_id", BOB).execute().data
    assert bob == []


def test_rpc_security_invoker_never_reaches_bobs_rows(stack: Stack) -> None:
    client = stack.supabase(user=ALICE)
    got = client.rpc("my_todos", {}).order("id").execute().data
    assert got == stack.sql("select * from my_todos() order by id", user=ALICE)
    assert {row["user_id"] for row in got} == {ALICE}
    assert client.rpc("my_todos", {}).eq("user_id", BOB).execute().data == []


def test_update_never_touches_bobs_rows(stack: Stack) -> None:
    before = all_todos(stack)
    expected = stack.sql("update todos set done = true where id = 3 returning *", user=ALICE)
    got = stack.supabase(user=ALICE).table("todos").update({"done": True}).eq("id", 3).execute().data
    assert got == expected == []
    assert all_todos(stack) == before


def test_bulk_update_touches_only_alices_rows(stack: Stack) -> None:
    expected = stack.sql("update todos set title = 'mine now' returning *", user=ALICE)
    got = stack.supabase(user=ALICE).table("todos").update({"title": "mine now"}).gt("id", 0).execute().data
    assert sorted(got, key=lambda row: row["id"]) == sorted(expected, key=lambda row: row["id"])
    titles = {row["id"]: row["title"] for row in all_todos(stack)}  # type: ignore[attr-defined]
    assert titles == {1: "mine now", 2: "mine now", 3: "bob: garden", 4: "bob: secret plan"}


def test_delete_never_removes_bobs_rows(stack: Stack) -> None:
    expected = stack.sql("delete from todos where project_id = 1 returning *", user=ALICE)
    got = stack.supabase(user=ALICE).table("todos").delete().eq("project_id", 1).execute().data
    assert got == expected
    assert [row["id"] for row in got] == [1]
    assert [row["id"] for row in all_todos(stack)] == [2, 3, 4]  # type: ignore[attr-defined]


def test_upsert_on_bobs_key_does_not_overwrite_it(stack: Stack) -> None:
    before = all_todos(stack)
    expected = stack.sql_error(
        "insert into todos (id, title) values (3, 'hijacked')"
        " on conflict (id) do update set title = excluded.title",
        user=ALICE,
    )
    client = stack.supabase(user=ALICE).table("todos")
    error = expect_error(client.upsert({"id": 3, "title": "hijacked"}, on_conflict="id").execute)
    assert_same_error(error, expected)
    assert stack.status == 403
    assert all_todos(stack) == before


def test_upsert_ignore_duplicates_on_bobs_key_leaves_it(stack: Stack) -> None:
    before = all_todos(stack)
    expected = stack.sql(
        "insert into todos (id, title) values (4, 'hijacked') on conflict (id) do nothing returning *",
        user=ALICE,
    )
    client = stack.supabase(user=ALICE).table("todos")
    got = (
        client.upsert({"id": 4, "title": "hijacked"}, on_conflict="id", ignore_duplicates=True).execute().data
    )
    assert got == expected == []
    assert all_todos(stack) == before


def test_upsert_claiming_bobs_ownership_is_refused(stack: Stack) -> None:
    expected = stack.sql_error(
        "insert into todos (id, user_id, title) values (9, %s, 'planted')", (BOB,), user=ALICE
    )
    error = expect_error(
        stack.supabase(user=ALICE)
        .table("todos")
        .upsert({"id": 9, "user_id": BOB, "title": "planted"})
        .execute
    )
    assert_same_error(error, expected)
    assert stack.status == 403


def test_bulk_insert_with_one_foreign_row_inserts_nothing(stack: Stack) -> None:
    before = all_todos(stack)
    rows = [{"id": 10, "user_id": ALICE, "title": "ok"}, {"id": 11, "user_id": BOB, "title": "planted"}]
    expected = stack.sql_error(
        "insert into todos (id, user_id, title) values (10, %s, 'ok'), (11, %s, 'planted')",
        (ALICE, BOB),
        user=ALICE,
    )
    error = expect_error(stack.supabase(user=ALICE).table("todos").insert(rows).execute)
    assert_same_error(error, expected)
    assert stack.status == 403
    assert all_todos(stack) == before


def test_bulk_insert_of_her_own_rows_works(stack: Stack) -> None:
    rows = [{"id": 12, "title": "one"}, {"id": 13, "title": "two", "project_id": 2}]
    got = stack.postgrest(user=ALICE).from_("todos").insert(rows, default_to_null=False).execute().data
    assert [(row["id"], row["user_id"]) for row in got] == [(12, ALICE), (13, ALICE)]
    assert stack.supabase(user=BOB).table("todos").select("id").in_("id", [12, 13]).execute().data == []


@pytest.mark.parametrize("table", ["todos", "profiles", "projects"])
def test_anon_cannot_read_what_it_was_not_granted(stack: Stack, table: str) -> None:
    expected = stack.sql_error(f"select * from {table}")
    error = expect_error(stack.supabase().table(table).select("*").execute)
    assert_same_error(error, expected)
    assert stack.status == 401


def test_anon_reads_what_it_was_granted(stack: Stack) -> None:
    got = stack.supabase().table("films").select("id,title").order("id").execute().data
    assert got == stack.sql("select id, title from films order by id")
    error = expect_error(stack.supabase().table("films").update({"title": "x"}).eq("id", 1).execute)
    assert_same_error(error, stack.sql_error("update films set title = 'x' where id = 1"))
    assert stack.status == 401


def test_anon_cannot_embed_what_it_was_not_granted(stack: Stack) -> None:
    error = expect_error(stack.supabase().table("projects").select("name,todos(title)").execute)
    assert error.code == "42501"
    assert stack.status == 401


def test_service_role_bypasses_rls(stack: Stack) -> None:
    got = stack.supabase(service=True).table("todos").select("*").order("id").execute().data
    assert got == all_todos(stack)
    assert len(got) == 4
