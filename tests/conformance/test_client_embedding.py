"""Resource embedding through the real clients, each kind checked against the equivalent SQL."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from conformance_support import Stack, expect_error, start_stack
from harness import PostgresServer


@pytest.fixture(scope="module")
def stack(postgres: PostgresServer) -> Iterator[Stack]:
    yield from start_stack(postgres, "conf_embed")


# Correlated subqueries PostgreSQL answers with the same JSON shapes as an embed.
DIRECTOR_OF_FILM = "(select to_json(d) from (select last_name from directors where id = f.director_id) d)"
SPECS_OF_FILM = "(select to_json(t) from (select runtime from technical_specs where film_id = f.id) t)"


def films_of_director(columns: str, where: str = "true", tail: str = "order by id") -> str:
    return (
        f"(select coalesce(json_agg(x), '[]') from (select {columns} from films"
        f" where director_id = d.id and {where} {tail}) x)"
    )


def test_many_to_one_is_an_object_or_null(stack: Stack) -> None:
    got = stack.supabase().table("films").select("title,directors(last_name)").order("id").execute().data
    assert got == stack.sql(f"select title, {DIRECTOR_OF_FILM} as directors from films f order by id")
    assert got[3]["directors"] is None


def test_one_to_many_is_an_array(stack: Stack) -> None:
    got = (
        stack.supabase()
        .table("directors")
        .select("last_name,films(title)")
        .order("id")
        .order("id", foreign_table="films")
        .execute()
        .data
    )
    expected = stack.sql(
        f"select last_name, {films_of_director('title')} as films from directors d order by id"
    )
    assert got == expected
    assert got[2]["films"] == []


def test_one_to_one_is_an_object(stack: Stack) -> None:
    got = stack.supabase().table("films").select("id,technical_specs(runtime)").order("id").execute().data
    assert got == stack.sql(f"select id, {SPECS_OF_FILM} as technical_specs from films f order by id")


def test_many_to_many_goes_through_the_junction(stack: Stack) -> None:
    got = (
        stack.supabase()
        .table("films")
        .select("title,actors(name)")
        .order("id")
        .order("name", foreign_table="actors")
        .execute()
        .data
    )
    expected = stack.sql(
        "select title, (select coalesce(json_agg(a), '[]') from (select actors.name from actors"
        " join roles on roles.actor_id = actors.id where roles.film_id = f.id order by actors.name) a)"
        " as actors"
        " from films f order by id"
    )
    assert got == expected


def test_nested_embeds(stack: Stack) -> None:
    got = (
        stack.supabase()
        .table("actors")
        .select("name,roles(character,films(title,directors(last_name)))")
        .eq("id", 4)
        .execute()
        .data
    )
    expected = stack.sql(
        "select name, (select coalesce(json_agg(r), '[]') from (select character,"
        " (select to_json(ff) from (select title,"
        f" {DIRECTOR_OF_FILM} as directors from films f where f.id = roles.film_id) ff) as films"
        " from roles where actor_id = a.id) r) as roles from actors a where id = 4"
    )
    assert got == expected


def test_inner_embed_drops_parents_without_a_match(stack: Stack) -> None:
    got = (
        stack.supabase()
        .table("directors")
        .select("last_name,films!inner(title)")
        .lt("films.year", 1970)
        .order("id")
        .execute()
        .data
    )
    films = films_of_director("title", "year < 1970")
    expected = stack.sql(
        f"select last_name, {films} as films from directors d"
        " where exists (select 1 from films where director_id = d.id and year < 1970) order by id"
    )
    assert got == expected == [{"last_name": "Varda", "films": [{"title": "Cleo from 5 to 7"}]}]


def test_embed_null_filter_is_an_anti_join(stack: Stack) -> None:
    got = stack.supabase().table("films").select("id,directors(id)").is_("directors", "null").execute().data
    assert got == stack.sql("select id, null::json as directors from films where director_id is null")


def test_hints_pick_one_of_two_foreign_keys(stack: Stack) -> None:
    table = stack.supabase().table("customers")
    by_constraint = table.select("name,addresses!billing(city)").order("id").execute().data
    by_column = table.select("name,addresses!shipping_id(city)").order("id").execute().data
    assert by_constraint == stack.sql(
        "select name, (select to_json(a) from (select city from addresses where id = c.billing_id) a)"
        " as addresses from customers c order by id"
    )
    assert by_column == stack.sql(
        "select name, (select to_json(a) from (select city from addresses where id = c.shipping_id) a)"
        " as addresses from customers c order by id"
    )


def test_aliased_embeds(stack: Stack) -> None:
    got = (
        stack.supabase()
        .table("customers")
        .select("name,billing:addresses!billing(city),shipping:addresses!shipping(town:city)")
        .order("id")
        .execute()
        .data
    )
    expected = stack.sql(
        "select name,"
        " (select to_json(a) from (select city from addresses where id = c.billing_id) a) as billing,"
        " (select to_json(a) from (select city as town from addresses where id = c.shipping_id) a)"
        " as shipping"
        " from customers c order by id"
    )
    assert got == expected


def test_ambiguous_embed_is_pgrst201(stack: Stack) -> None:
    error = expect_error(stack.supabase().table("customers").select("name,addresses(city)").execute)
    assert stack.status == 300
    assert error.code == "PGRST201"
    assert error.message == (
        "Could not embed because more than one relationship was found for 'customers' and 'addresses'"
    )
    assert isinstance(error.details, list)
    assert sorted(d["relationship"].split(" ")[0] for d in error.details) == ["billing", "shipping"]
    assert {d["cardinality"] for d in error.details} == {"many-to-one"}
    assert error.hint is not None
    assert "addresses!billing" in error.hint
    assert "addresses!shipping" in error.hint


def test_spread_lifts_to_one_columns(stack: Stack) -> None:
    got = (
        stack.supabase()
        .table("films")
        .select("title,...directors(director:last_name),...technical_specs(runtime)")
        .order("id")
        .execute()
        .data
    )
    expected = stack.sql(
        "select f.title, d.last_name as director, t.runtime from films f left join directors d"
        " on d.id = f.director_id left join technical_specs t on t.film_id = f.id order by f.id"
    )
    assert got == expected


def test_filter_order_limit_on_the_embedded_resource(stack: Stack) -> None:
    got = (
        stack.supabase()
        .table("directors")
        .select("last_name,films(title,year)")
        .gte("films.year", 1970)
        .order("id")
        .order("year", desc=True, foreign_table="films")
        .limit(1, foreign_table="films")
        .execute()
        .data
    )
    films = films_of_director("title, year", "year >= 1970", "order by year desc limit 1")
    assert got == stack.sql(f"select last_name, {films} as films from directors d order by id")


def test_or_on_the_embedded_resource(stack: Stack) -> None:
    got = (
        stack.supabase()
        .table("directors")
        .select("id,films(id)")
        .or_("year.lt.1965,year.gt.1990", reference_table="films")
        .order("id")
        .order("id", foreign_table="films")
        .execute()
        .data
    )
    films = films_of_director("id", "(year < 1965 or year > 1990)")
    assert got == stack.sql(f"select id, {films} as films from directors d order by id")


def test_range_on_the_embedded_resource(stack: Stack) -> None:
    got = (
        stack.supabase()
        .table("films")
        .select("id,roles(character)")
        .eq("id", 1)
        .order("character", foreign_table="roles")
        .range(1, 1, foreign_table="roles")
        .execute()
        .data
    )
    expected = stack.sql(
        "select id, (select coalesce(json_agg(r), '[]') from (select character from roles"
        " where film_id = f.id order by character limit 1 offset 1) r) as roles from films f where id = 1"
    )
    assert got == expected
