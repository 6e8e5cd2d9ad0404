"""The plan and query stages on a hand-built schema: names checked, values bound, SQL shaped."""

from __future__ import annotations

import pytest

from fluxbase.rest.errors import ApiError, TableNotFound
from fluxbase.rest.plan import PlanSettings, plan_read
from fluxbase.rest.query import read_statement
from fluxbase.rest.request.api_request import parse_request
from fluxbase.rest.schema import SchemaCache


def plan(cache: SchemaCache, query: str, target: str = "films", **settings: object):  # type: ignore[no-untyped-def]
    pairs = [tuple(p.split("=", 1)) for p in query.split("&") if p] if query else []
    request = parse_request("GET", "relation", target, pairs, {})  # type: ignore[arg-type]
    return plan_read(request, cache, "public", PlanSettings(**settings))  # type: ignore[arg-type]


def sql(cache: SchemaCache, query: str, **kwargs: object) -> tuple[str, list[object]]:
    statement = read_statement(plan(cache, query), **kwargs)  # type: ignore[arg-type]
    return statement.sql, statement.params


def error(cache: SchemaCache, query: str, target: str = "films") -> ApiError:
    with pytest.raises(ApiError) as caught:
        plan(cache, query, target)
    return caught.value


def test_star_reads_every_column_in_order(cache: SchemaCache) -> None:
    fields = plan(cache, "").fields
    assert [f.name for f in fields] == ["id", "title", "director_id", "data", "tags", "tsv"]


def test_unknown_table_hints_the_closest_name(cache: SchemaCache) -> None:
    found = error(cache, "", target="flims")
    assert isinstance(found, TableNotFound) and found.candidates == ("films",)
    # The hint names a candidate only once the caller's privileges on it are known.
    assert found.hint is None
    assert found.with_visible(["films"]).hint == "Perhaps you meant the table 'public.films'"
    assert found.with_visible([]).hint is None
    assert error(cache, "", target="zzzz").hint is None


def test_unknown_table_and_column_are_refused_before_sql(cache: SchemaCache) -> None:
    assert error(cache, "", target="nope").code == "PGRST205"
    unknown = error(cache, "select=id,nope")
    assert (unknown.status, unknown.code, unknown.message) == (
        400,
        "42703",
        "column films.nope does not exist",
    )
    assert error(cache, "nope=eq.1").code == "42703"
    assert error(cache, "order=nope").code == "42703"


def test_values_are_bound_never_inlined(cache: SchemaCache) -> None:
    text, params = sql(cache, "title=eq.Robert'); drop table films; --&id=in.(1,2)", exact_count=False)
    assert "drop table" not in text
    assert "Robert'); drop table films; --" in params
    assert ["1", "2"] in params
    assert '"title" = $1::text' in text
    assert '"id" = ANY(($2::text[])::integer[])' in text


def test_json_path_keys_are_bound(cache: SchemaCache) -> None:
    text, params = sql(cache, "select=data->>blood_type&data->age=gt.20", exact_count=False)
    assert "'blood_type'" not in text and "'age'" not in text  # keys are parameters, not literals
    assert params[:1] == ["blood_type"]
    assert '->>$1::text) AS "blood_type"' in text
    assert "(($3::text)::jsonb)" in text or "($3::text)::jsonb" in text


def test_aliases_casts_and_order(cache: SchemaCache) -> None:
    text, _ = sql(cache, "select=name:title,id::text&order=id.desc.nullslast,title", exact_count=False)
    assert '"title" AS "name"' in text
    assert '::text AS "id"' in text
    assert 'ORDER BY "films"."id" DESC NULLS LAST, "films"."title"' in text


def test_like_stars_and_not_and_logic(cache: SchemaCache) -> None:
    text, params = sql(cache, "title=not.like.*Star*&or=(id.lt.3,id.gt.9)", exact_count=False)
    assert "%Star%" in params
    assert 'NOT ("films"."title" LIKE $1::text)' in text
    assert '("films"."id" < ($2::text)::integer OR "films"."id" > ($3::text)::integer)' in text


def test_full_text_search_with_language(cache: SchemaCache) -> None:
    text, params = sql(cache, "tsv=fts(french).amusant&title=wfts.cat", exact_count=False)
    assert '"tsv" @@ to_tsquery($1::text::regconfig, $2::text)' in text
    assert 'to_tsvector("films"."title") @@ websearch_to_tsquery($3::text)' in text
    assert params[:3] == ["french", "amusant", "cat"]


def test_many_to_one_embed_is_an_object(cache: SchemaCache) -> None:
    read = plan(cache, "select=title,directors(last_name)")
    [embed] = read.embeds
    assert embed.to_one and embed.name == "directors"
    text, _ = sql(cache, "select=title,directors(last_name)", exact_count=False)
    assert "LEFT JOIN LATERAL (SELECT row_to_json(_e) AS body" in text


def test_many_to_many_goes_through_the_junction(cache: SchemaCache) -> None:
    text, _ = sql(cache, "select=title,actors(name)", exact_count=False)
    assert 'EXISTS (SELECT 1 FROM "public"."roles"' in text
    assert "coalesce(json_agg(_e), '[]')" in text


def test_inner_embed_and_null_filters(cache: SchemaCache) -> None:
    text, _ = sql(cache, "select=title,roles!inner(character)", exact_count=False)
    assert ".n > 0" in text
    text, _ = sql(cache, "select=title,directors(*)&directors=is.null", exact_count=False)
    assert ".body IS NULL" in text


def test_embedded_filters_order_and_limit_apply_inside_the_embed(cache: SchemaCache) -> None:
    read = plan(cache, "select=last_name,films(title)&films.title=like.A*&films.order=title&films.limit=2",
                target="directors")  # fmt: skip
    [embed] = read.embeds
    assert len(embed.read.where) == 1 and len(embed.read.order) == 1
    assert embed.read.page.limit == 2


def test_filters_on_unknown_embeds_and_bad_embed_operators(cache: SchemaCache) -> None:
    assert error(cache, "select=title&actors.name=eq.x").code == "PGRST108"
    assert error(cache, "select=title,directors(*)&directors=eq.1").code == "PGRST120"


def test_unknown_and_ambiguous_relationships(cache: SchemaCache) -> None:
    unknown = error(cache, "select=title,studios(*)")
    assert (unknown.status, unknown.code) == (400, "PGRST200")
    assert (
        plan(cache, "select=title,director:directors!films_director_id_fkey(*)").embeds[0].name == "director"
    )


def test_count_query_and_max_rows(cache: SchemaCache) -> None:
    text, _ = sql(cache, "select=title", exact_count=True)
    assert "(SELECT count(*) FROM (SELECT 1 FROM" in text
    assert plan(cache, "", max_rows=10).page.limit == 10
    assert plan(cache, "limit=3", max_rows=10).page.limit == 3


def test_aggregates_are_opt_in(cache: SchemaCache) -> None:
    assert error(cache, "select=id.sum()").code == "PGRST123"
    grouped = read_statement(
        plan(cache, "select=director_id,id.count()", aggregates_enabled=True), exact_count=False
    )
    assert 'count("films"."id") AS "count"' in grouped.sql
    assert 'GROUP BY "films"."director_id"' in grouped.sql
