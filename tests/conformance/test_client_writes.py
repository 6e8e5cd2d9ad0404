"""Writes through the real clients: insert, bulk insert, upsert modes, missing=default, update, delete.

PostgreSQL runs the same statement first, as the same user, rolled back; the
client's write must return the same rows and leave the table as that statement would.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from postgrest.types import ReturnMethod

from conformance_support import ALICE, Stack, assert_same_error, expect_error, start_stack
from harness import PostgresServer


@pytest.fixture(scope="module")
def stack(postgres: PostgresServer) -> Iterator[Stack]:
    yield from start_stack(postgres, "conf_writes")


def gadgets(stack: Stack, where: str = "true") -> object:
    return stack.sql(f"select * from gadgets where {where} order by id", role="service_role")


def test_insert_one_returns_the_row(stack: Stack) -> None:
    expected = stack.sql(
        "insert into gadgets (id, sku, name) values (100, 'g-100', 'hundred') returning *", user=ALICE
    )
    got = stack.supabase(user=ALICE).table("gadgets").insert({"id": 100, "sku": "g-100", "name": "hundred"})
    assert got.execute().data == expected
    assert stack.status == 201
    assert gadgets(stack, "id = 100") == expected


def test_bulk_insert_missing_keys_are_null(stack: Stack) -> None:
    rows = [
        {"id": 101, "sku": "g-101", "name": "a", "note": "given"},
        {"id": 102, "sku": "g-102", "name": "b"},
    ]
    expected = stack.sql(
        "insert into gadgets (id, sku, name, note)"
        " values (101, 'g-101', 'a', 'given'), (102, 'g-102', 'b', null)"
        " returning *",
        user=ALICE,
    )
    got = stack.supabase(user=ALICE).table("gadgets").insert(rows).execute().data
    assert got == expected
    assert [row["note"] for row in got] == ["given", None]


def test_bulk_insert_default_to_null_false_uses_column_defaults(stack: Stack) -> None:
    rows = [{"id": 103, "sku": "g-103", "name": "c", "qty": 1}, {"id": 104, "sku": "g-104", "name": "d"}]
    expected = stack.sql(
        "insert into gadgets (id, sku, name, qty) values (103, 'g-103', 'c', 1), (104, 'g-104', 'd', default)"
        " returning *",
        user=ALICE,
    )
    got = stack.supabase(user=ALICE).table("gadgets").insert(rows, default_to_null=False).execute().data
    assert got == expected
    assert (got[1]["qty"], got[1]["note"]) == (7, "fresh")


def test_bulk_insert_with_a_missing_not_null_key_fails_as_postgresql_does(stack: Stack) -> None:
    rows = [{"id": 105, "sku": "g-105", "name": "e", "qty": 2}, {"id": 106, "sku": "g-106", "name": "f"}]
    expected = stack.sql_error(
        "insert into gadgets (id, sku, name, qty) values (105, 'g-105', 'e', 2), (106, 'g-106', 'f', null)",
        user=ALICE,
    )
    error = expect_error(stack.supabase(user=ALICE).table("gadgets").insert(rows).execute)
    assert_same_error(error, expected)
    assert stack.status == 400
    assert gadgets(stack, "id in (105, 106)") == []


def test_upsert_merges_on_the_primary_key(stack: Stack) -> None:
    stack.owner("insert into gadgets (id, sku, name) values (110, 'g-110', 'old')")
    expected = stack.sql(
        "insert into gadgets (id, sku, name) values (110, 'g-110', 'new') on conflict (id) do update"
        " set sku = excluded.sku, name = excluded.name returning *",
        user=ALICE,
    )
    got = stack.supabase(user=ALICE).table("gadgets").upsert({"id": 110, "sku": "g-110", "name": "new"})
    assert got.execute().data == expected
    assert stack.status == 200  # PostgREST: 200 when the upsert inserted nothing
    assert gadgets(stack, "id = 110") == expected
    minimal = (
        stack.supabase(user=ALICE)
        .table("gadgets")
        .upsert({"id": 110, "sku": "g-110", "name": "newer"}, returning=ReturnMethod.minimal)
    )
    assert (minimal.execute().data, stack.status) == ([], 200)


def test_upsert_on_conflict_with_a_unique_column(stack: Stack) -> None:
    stack.owner("insert into gadgets (id, sku, name, qty) values (111, 'g-111', 'old', 3)")
    rows = [{"sku": "g-111", "name": "merged"}, {"sku": "g-112", "name": "added"}]
    expected = stack.sql(
        "insert into gadgets (sku, name) values ('g-111', 'merged'), ('g-112', 'added') on conflict (sku)"
        " do update set sku = excluded.sku, name = excluded.name returning sku, name, qty",
        user=ALICE,
    )
    got = stack.supabase(user=ALICE).table("gadgets").upsert(rows, on_conflict="sku").execute().data
    assert [{k: row[k] for k in ("sku", "name", "qty")} for row in got] == expected
    assert stack.status == 201  # one row was new
    assert gadgets(stack, "sku = 'g-111'")[0]["qty"] == 3  # type: ignore[index]


def test_upsert_ignore_duplicates_keeps_the_existing_row(stack: Stack) -> None:
    stack.owner("insert into gadgets (id, sku, name) values (113, 'g-113', 'kept')")
    rows = [{"id": 113, "sku": "g-113", "name": "ignored"}, {"id": 114, "sku": "g-114", "name": "new"}]
    expected = stack.sql(
        "insert into gadgets (id, sku, name) values (113, 'g-113', 'ignored'), (114, 'g-114', 'new')"
        " on conflict (sku) do nothing returning *",
        user=ALICE,
    )
    client = stack.supabase(user=ALICE).table("gadgets")
    got = client.upsert(rows, on_conflict="sku", ignore_duplicates=True).execute().data
    assert got == expected
    assert [row["id"] for row in got] == [114]
    assert gadgets(stack, "id = 113")[0]["name"] == "kept"  # type: ignore[index]


def test_upsert_default_to_null_false(stack: Stack) -> None:
    rows = [{"id": 115, "sku": "g-115", "name": "x", "qty": 5}, {"id": 116, "sku": "g-116", "name": "y"}]
    expected = stack.sql(
        "insert into gadgets (id, sku, name, qty) values (115, 'g-115', 'x', 5), (116, 'g-116', 'y', default)"
        " on conflict (id) do update set sku = excluded.sku, name = excluded.name, qty = excluded.qty"
        " returning *",
        user=ALICE,
    )
    client = stack.supabase(user=ALICE).table("gadgets")
    assert client.upsert(rows, default_to_null=False).execute().data == expected


def test_update_with_filters(stack: Stack) -> None:
    stack.owner("insert into gadgets (id, sku, name) values (120, 'g-120', 'u'), (121, 'g-121', 'u')")
    expected = stack.sql(
        "update gadgets set qty = 0, note = null where name = 'u' and id > 120 returning *", user=ALICE
    )
    client = stack.supabase(user=ALICE).table("gadgets")
    got = client.update({"qty": 0, "note": None}).eq("name", "u").gt("id", 120).execute().data
    assert got == expected
    assert stack.status == 200
    assert gadgets(stack, "name = 'u'") == [*gadgets(stack, "id = 120"), *expected]  # type: ignore[misc]


def test_update_with_count(stack: Stack) -> None:
    stack.owner("insert into gadgets (id, sku, name) values (122, 'g-122', 'cnt'), (123, 'g-123', 'cnt')")
    response = (
        stack.supabase(user=ALICE)
        .table("gadgets")
        .update({"qty": 9}, count="exact", returning=ReturnMethod.minimal)  # type: ignore[arg-type]
        .eq("name", "cnt")
        .execute()
    )
    assert (
        response.count
        == stack.sql("select count(*) as n from gadgets where name = 'cnt'", user=ALICE)[0]["n"]
        == 2
    )
    assert response.data == []
    assert stack.status == 204


def test_delete_returns_the_deleted_rows(stack: Stack) -> None:
    stack.owner("insert into gadgets (id, sku, name) values (130, 'g-130', 'd'), (131, 'g-131', 'd')")
    expected = stack.sql("delete from gadgets where name = 'd' returning *", user=ALICE)
    got = stack.supabase(user=ALICE).table("gadgets").delete().eq("name", "d").order("id").execute().data
    assert sorted(got, key=lambda row: row["id"]) == expected
    assert gadgets(stack, "name = 'd'") == []


def test_returning_minimal_has_no_body(stack: Stack) -> None:
    client = stack.supabase(user=ALICE).table("gadgets")
    inserted = client.insert(
        {"id": 140, "sku": "g-140", "name": "m"}, returning=ReturnMethod.minimal
    ).execute()
    assert (inserted.data, stack.status) == ([], 201)
    deleted = client.delete(returning=ReturnMethod.minimal).eq("id", 140).execute()
    assert (deleted.data, stack.status) == ([], 204)
    assert gadgets(stack, "id = 140") == []


def test_insert_with_select_embeds_in_the_representation(stack: Stack) -> None:
    client = stack.supabase(user=ALICE).table("gadgets")
    got = client.insert({"id": 150, "sku": "g-150", "name": "e", "director_id": 2}).select(
        "name,directors(last_name)"
    )
    assert got.execute().data == [{"name": "e", "directors": {"last_name": "Varda"}}]


def test_insert_count_exact(stack: Stack) -> None:
    rows = [{"id": 160 + i, "sku": f"g-{160 + i}", "name": "n"} for i in range(3)]
    response = stack.supabase(user=ALICE).table("gadgets").insert(rows, count="exact").execute()  # type: ignore[arg-type]
    assert response.count == 3
    assert response.data == gadgets(stack, "id between 160 and 162")
