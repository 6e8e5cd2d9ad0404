"""Reads through the real clients: every filter, ordering, paging, singular, CSV and count mode.

Each case is a client call and the SQL PostgreSQL runs for it; the rows must be equal.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable, Iterator
from typing import Any

import psycopg
import pytest

from conformance_support import Stack, expect_error, start_stack
from harness import PostgresServer

Builder = Any  # postgrest's SyncSelectRequestBuilder; its generics do not help here


@pytest.fixture(scope="module")
def stack(postgres: PostgresServer) -> Iterator[Stack]:
    yield from start_stack(postgres, "conf_reads")


FILTERS: list[tuple[str, Callable[[Builder], Builder], str]] = [
    ("eq", lambda q: q.eq("year", 1980), "year = 1980"),
    ("neq", lambda q: q.neq("year", 1980), "year <> 1980"),
    ("gt", lambda q: q.gt("rating", 8.1), "rating > 8.1"),
    ("gte", lambda q: q.gte("rating", 8.1), "rating >= 8.1"),
    ("lt", lambda q: q.lt("year", 1975), "year < 1975"),
    ("lte", lambda q: q.lte("year", 1975), "year <= 1975"),
    ("like %", lambda q: q.like("title", "%on"), "title like '%on'"),
    ("like *", lambda q: q.like("title", "The*"), "title like 'The%'"),
    ("ilike", lambda q: q.ilike("title", "%THE%"), "title ilike '%the%'"),
    ("like_any_of", lambda q: q.like_any_of("title", "*Shining,Cleo*"), "title like any('{%Shining,Cleo%}')"),
    ("ilike_all_of", lambda q: q.ilike_all_of("title", "the*,*i*"), "title ilike all('{the%,%i%}')"),
    ("is null", lambda q: q.is_("year", None), "year is null"),
    ("is null json path", lambda q: q.is_("data->>lang", None), "data->>'lang' is null"),
    ("not is null", lambda q: q.not_.is_("year", "null"), "year is not null"),
    ("in ints", lambda q: q.in_("id", [1, 3, 99]), "id in (1, 3, 99)"),
    (
        "in texts",
        lambda q: q.in_("title", ["Barry Lyndon", "Untitled"]),
        "title in ('Barry Lyndon', 'Untitled')",
    ),
    ("not in", lambda q: q.not_.in_("id", [1, 3]), "id not in (1, 3)"),
    ("contains array", lambda q: q.contains("tags", ["classic"]), "tags @> '{classic}'"),
    ("contains json", lambda q: q.contains("data", {"lang": "en"}), 'data @> \'{"lang": "en"}\''),
    (
        "contains range",
        lambda q: q.contains("shooting", "[1974,1975)"),
        "shooting @> '[1974,1975)'::int4range",
    ),
    (
        "contained_by array",
        lambda q: q.contained_by("tags", ["drama", "classic"]),
        "tags <@ '{drama,classic}'",
    ),
    (
        "contained_by json",
        lambda q: q.contained_by("data", {"lang": "fr", "budget": 1, "x": 2}),
        'data <@ \'{"lang": "fr", "budget": 1, "x": 2}\'',
    ),
    (
        "overlaps array",
        lambda q: q.overlaps("tags", ["horror", "documentary"]),
        "tags && '{horror,documentary}'",
    ),
    (
        "overlaps range",
        lambda q: q.overlaps("shooting", "[1960,1976)"),
        "shooting && '[1960,1976)'::int4range",
    ),
    ("range_gt", lambda q: q.range_gt("shooting", (1965, 1972)), "shooting >> '(1965,1972)'::int4range"),
    ("range_gte", lambda q: q.range_gte("shooting", (1965, 1974)), "shooting &> '(1965,1974)'::int4range"),
    ("range_lt", lambda q: q.range_lt("shooting", (1965, 1972)), "shooting << '(1965,1972)'::int4range"),
    ("range_lte", lambda q: q.range_lte("shooting", (1965, 1976)), "shooting &< '(1965,1976)'::int4range"),
    (
        "range_adjacent",
        lambda q: q.range_adjacent("shooting", (1962, 1973)),
        "shooting -|- '(1962,1973)'::int4range",
    ),
    ("fts", lambda q: q.text_search("tsv", "hotel & winter"), "tsv @@ to_tsquery('hotel & winter')"),
    (
        "plfts",
        lambda q: q.text_search("tsv", "isolated hotels", {"type": "plain"}),
        "tsv @@ plainto_tsquery('isolated hotels')",
    ),
    (
        "phfts",
        lambda q: q.text_search("tsv", "medical test", {"type": "phrase"}),
        "tsv @@ phraseto_tsquery('medical test')",
    ),
    (
        "wfts",
        lambda q: q.text_search("tsv", "gleaners -paris", {"type": "web_search"}),
        "tsv @@ websearch_to_tsquery('gleaners -paris')",
    ),
    (
        "fts config",
        lambda q: q.text_search("tsv", "rogue", {"type": "plain", "config": "english"}),
        "tsv @@ plainto_tsquery('english', 'rogue')",
    ),
    (
        "fts on text",
        lambda q: q.text_search("summary", "paris", {"config": "english"}),
        "to_tsvector('english', summary) @@ to_tsquery('english', 'paris')",
    ),
    ("match", lambda q: q.match({"director_id": 1, "year": 1975}), "director_id = 1 and year = 1975"),
    ("not eq", lambda q: q.not_.eq("year", 1980), "not (year = 1980)"),
    ("not like", lambda q: q.not_.like("title", "The*"), "not (title like 'The%')"),
    ("or", lambda q: q.or_("year.lt.1965,id.eq.4"), "year < 1965 or id = 4"),
    (
        "or nested and",
        lambda q: q.or_("year.gt.1990,and(director_id.eq.1,rating.gt.8.2)"),
        "year > 1990 or (director_id = 1 and rating > 8.2)",
    ),
    ("not or", lambda q: q.not_.or_("year.lt.1965,id.eq.4"), "not (year < 1965 or id = 4)"),
    ("filter cs", lambda q: q.filter("tags", "cs", "{classic}"), "tags @> '{classic}'"),
    ("filter json ->>", lambda q: q.filter("data->>lang", "eq", "fr"), "data->>'lang' = 'fr'"),
    ("filter json ->", lambda q: q.filter("data->budget", "gt", "10"), "data->'budget' > '10'"),
    ("filter imatch", lambda q: q.filter("title", "imatch", "^the"), "title ~* '^the'"),
    ("filter match", lambda q: q.filter("title", "match", "^B"), "title ~ '^B'"),
    ("filter isdistinct", lambda q: q.filter("year", "isdistinct", "1980"), "year is distinct from 1980"),
    ("filter not.in", lambda q: q.filter("id", "not.in", "(2,4)"), "id not in (2, 4)"),
    (
        "chained",
        lambda q: q.gte("year", 1960).lt("year", 1990).neq("director_id", 2),
        "year >= 1960 and year < 1990 and director_id <> 2",
    ),
]


@pytest.mark.parametrize(("case", "build", "where"), FILTERS, ids=[case for case, _, _ in FILTERS])
def test_filter_matches_postgresql(
    stack: Stack, case: str, build: Callable[[Builder], Builder], where: str
) -> None:
    client = stack.supabase()
    got = build(client.table("films").select("id,title")).order("id").execute().data
    expected = stack.sql(f"select id, title from films where {where} order by id")
    assert got == expected, case
    assert stack.status == 200


def test_filters_apply_through_the_bare_postgrest_client(stack: Stack) -> None:
    client = stack.postgrest()
    got = client.from_("films").select("*").contains("tags", ["drama"]).order("id").execute().data
    assert got == stack.sql("select * from films where tags @> '{drama}' order by id")


ORDERS: list[tuple[str, Callable[[Builder], Builder], str]] = [
    ("asc", lambda q: q.order("year").order("id"), "year asc, id"),
    ("desc", lambda q: q.order("year", desc=True).order("id"), "year desc, id"),
    ("desc nullslast", lambda q: q.order("year", desc=True, nullsfirst=False), "year desc nulls last"),
    ("asc nullsfirst", lambda q: q.order("rating", nullsfirst=True), "rating asc nulls first"),
    (
        "two columns",
        lambda q: q.order("director_id", desc=True, nullsfirst=False).order("year"),
        "director_id desc nulls last, year",
    ),
    ("json path", lambda q: q.order("data->>lang").order("id", desc=True), "data->>'lang', id desc"),
    ("limit", lambda q: q.order("id").limit(2), "id limit 2"),
    ("limit offset", lambda q: q.order("id").limit(2).offset(1), "id limit 2 offset 1"),
    ("range", lambda q: q.order("id").range(1, 3), "id limit 3 offset 1"),
    ("range past the end", lambda q: q.order("id").range(3, 10), "id offset 3"),
]


@pytest.mark.parametrize(("case", "build", "order"), ORDERS, ids=[case for case, _, _ in ORDERS])
def test_order_and_paging_match_postgresql(
    stack: Stack, case: str, build: Callable[[Builder], Builder], order: str
) -> None:
    got = build(stack.supabase().table("films").select("id,year,rating")).execute().data
    assert got == stack.sql(f"select id, year, rating from films order by {order}"), case


def test_order_by_a_to_one_embed(stack: Stack) -> None:
    got = (
        stack.supabase()
        .table("films")
        .select("id,directors(last_name)")
        .order("directors(last_name)", desc=True, nullsfirst=False)
        .order("id")
        .execute()
        .data
    )
    expected = stack.sql(
        "select f.id, (select to_json(d) from (select last_name from directors where id = f.director_id) d)"
        " as directors from films f left join directors dd on dd.id = f.director_id"
        " order by dd.last_name desc nulls last, f.id"
    )
    assert got == expected


def test_order_and_limit_on_the_foreign_table(stack: Stack) -> None:
    got = (
        stack.supabase()
        .table("directors")
        .select("last_name,films(title,year)")
        .order("id")
        .order("year", desc=True, foreign_table="films")
        .limit(1, foreign_table="films")
        .execute()
        .data
    )
    expected = stack.sql(
        "select d.last_name, (select coalesce(json_agg(x), '[]') from (select title, year from films"
        " where director_id = d.id order by year desc limit 1) x) as films from directors d order by d.id"
    )
    assert got == expected


def test_single_returns_the_one_row(stack: Stack) -> None:
    got = stack.supabase().table("films").select("id,title,tags").eq("id", 3).single().execute().data
    assert got == stack.sql("select id, title, tags from films where id = 3")[0]


def test_maybe_single_is_the_row_or_none(stack: Stack) -> None:
    table = stack.supabase().table("films")
    one = table.select("id,title").eq("id", 2).maybe_single().execute()
    assert one is not None
    assert one.data == stack.sql("select id, title from films where id = 2")[0]
    assert table.select("id").eq("id", 99).maybe_single().execute() is None


def test_single_with_zero_or_many_rows_is_pgrst116(stack: Stack) -> None:
    table = stack.supabase().table("films")
    for query, rows in ((table.select("id").eq("id", 99), 0), (table.select("id"), 5)):
        error = expect_error(query.single().execute)
        assert stack.status == 406
        assert (error.code, error.message) == ("PGRST116", "Cannot coerce the result to a single JSON object")
        assert error.details == f"The result contains {rows} rows"
    assert rows == stack.sql("select count(*) as n from films")[0]["n"]


def _csv_rows(text: str) -> list[list[str]]:
    return list(csv.reader(io.StringIO(text)))


def test_csv_matches_postgresql_copy(stack: Stack) -> None:
    got = stack.supabase().table("films").select("id,title,year,rating").order("id").csv().execute().data
    with psycopg.connect(stack.dsn) as conn:
        conn.execute("set local role anon")
        out = io.BytesIO()
        query = (
            "copy (select id, title, year, rating from films order by id) to stdout with (format csv, header)"
        )
        with conn.cursor().copy(query) as copy:
            for block in copy:
                out.write(block)
    assert isinstance(got, str)
    assert _csv_rows(got) == _csv_rows(out.getvalue().decode())


def _planned_rows(stack: Stack, query: str) -> int:
    with psycopg.connect(stack.dsn) as conn:
        conn.execute("set local role anon")
        row = conn.execute(f"explain (format json) {query}").fetchone()  # type: ignore[arg-type]
    assert row is not None
    plan = row[0] if not isinstance(row[0], str) else json.loads(row[0])
    return int(plan[0]["Plan"]["Plan Rows"])


@pytest.mark.parametrize("mode", ["exact", "planned", "estimated"])
def test_count_modes(stack: Stack, mode: str) -> None:
    response = (
        stack.supabase()
        .table("films")
        .select("id", count=mode)
        .gte("year", 1970)
        .order("id")
        .limit(1)
        .execute()  # type: ignore[arg-type]
    )
    assert response.data == stack.sql("select id from films where year >= 1970 order by id limit 1")
    exact = stack.sql("select count(*) as n from films where year >= 1970")[0]["n"]
    planned = _planned_rows(stack, "select 1 from films where year >= 1970")
    if mode == "planned":
        assert response.count == planned
    elif mode == "estimated":
        # PostgREST: the exact count up to db-max-rows; past it, or with none set (as here),
        # the larger of the exact count and the planner's estimate.
        assert response.count == max(exact, planned)
    else:
        assert response.count == exact
    assert stack.status == (206 if response.count and response.count > 1 else 200)


def test_count_with_head_has_no_body(stack: Stack) -> None:
    response = (
        stack.supabase().table("films").select("*", count="exact", head=True).is_("year", None).execute()
    )  # type: ignore[arg-type]
    assert response.count == stack.sql("select count(*) as n from films where year is null")[0]["n"]
    assert response.data == []
