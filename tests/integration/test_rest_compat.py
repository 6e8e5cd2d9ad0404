"""Issue 11, data API: each answer compared with what PostgREST documents for the same request.

Reads of relations: functions as relations, computed fields and relationships, views,
embedding hints, empty embeds, aggregates and spreads, error texts. Writes, counting and
formats are in test_rest_compat_writes.py. The fixture is tests/fixtures/rest_compat_schema.sql.
"""

from __future__ import annotations

from rest_compat_support import Start, get
from rest_support import ANON, SERVICE, Client

# --- functions that return tables --------------------------------------------------------


async def test_returns_table_function_takes_select_filters_and_order(compat: Client) -> None:
    status, body, headers = await get(
        compat, "rpc/film_stats?select=title,actor_count&actor_count=gte.1&order=actor_count.desc,title"
    )
    assert status == 200, body
    assert body == [
        {"title": "The Shining", "actor_count": 2},
        {"title": "Barry Lyndon", "actor_count": 1},
        {"title": "Cleo from 5 to 7", "actor_count": 1},
    ]
    assert headers["Content-Range"] == "0-2/*"


async def test_setof_record_with_out_parameters_is_a_relation(compat: Client) -> None:
    status, body, _ = await get(compat, "rpc/pairs?select=b&a=gt.1&order=a.desc")
    assert (status, body) == (200, [{"b": "three"}, {"b": "two"}])
    status, body, _ = await get(compat, "rpc/pairs?nope=eq.1")
    assert status == 400 and body["code"] == "42703"


async def test_rpc_post_with_filters_on_a_returns_table_function(compat: Client) -> None:
    response = await compat.post(
        "/rest/v1/rpc/film_stats?select=film_id&film_id=lt.3&order=film_id", json={}, headers=ANON
    )
    assert response.status == 200
    assert await response.json() == [{"film_id": 1}, {"film_id": 2}]


# --- computed fields and computed relationships ------------------------------------------


async def test_computed_field_in_select_filter_and_order(compat: Client) -> None:
    status, body, _ = await get(
        compat, "films?select=id,full_title&full_title=like.*(19*&order=full_title.desc"
    )
    assert status == 200, body
    assert body == [
        {"id": 1, "full_title": "The Shining (1980)"},
        {"id": 2, "full_title": "Cleo from 5 to 7 (1962)"},
        {"id": 3, "full_title": "Barry Lyndon (1975)"},
    ]
    # Not part of `*`, as in PostgREST.
    _, star, _ = await get(compat, "films?id=eq.1")
    assert "full_title" not in star[0]


async def test_computed_relationships_embed_to_one_and_to_many(compat: Client) -> None:
    status, body, _ = await get(compat, "films?select=title,director(name)&id=in.(1,4)&order=id")
    assert status == 200, body
    assert body == [
        {"title": "The Shining", "director": {"name": "Kubrick"}},
        {"title": "Untitled, maybe", "director": None},
    ]
    status, body, _ = await get(compat, "directors?select=name,filmography(title)&id=eq.1")
    assert body == [{"name": "Kubrick", "filmography": [{"title": "The Shining"}, {"title": "Barry Lyndon"}]}]
    # A to-one computed relationship orders like any to-one embed.
    status, body, _ = await get(
        compat, "films?select=id,director(name)&director_id=not.is.null&order=director(name).desc,id"
    )
    assert [row["id"] for row in body] == [2, 1, 3]


# --- views ----------------------------------------------------------------------------------


async def test_embedding_through_views_both_ways(compat: Client) -> None:
    status, body, _ = await get(compat, "film_view?select=title,directors(name)&id=eq.2")
    assert (status, body) == (200, [{"title": "Cleo from 5 to 7", "directors": {"name": "Varda"}}])
    status, body, _ = await get(compat, "directors?select=name,film_view(title)&id=eq.2")
    assert body == [{"name": "Varda", "film_view": [{"title": "Cleo from 5 to 7"}]}]
    # view to view, with a renamed column
    status, body, _ = await get(compat, "film_view?select=title,director_view(director_name)&id=eq.3")
    assert body == [{"title": "Barry Lyndon", "director_view": {"director_name": "Kubrick"}}]
    # A view over a table of an unexposed schema relates to what that table references.
    status, body, _ = await get(compat, "notes?select=body,films(title)&order=id")
    assert body == [
        {"body": "scary", "films": {"title": "The Shining"}},
        {"body": "long", "films": {"title": "Barry Lyndon"}},
    ]
    status, body, _ = await get(compat, "film_archive?select=title,directors(name)&id=eq.1")
    assert body == [{"title": "The Shining", "directors": {"name": "Kubrick"}}]
    status, body, _ = await get(compat, "films?select=title,notes(body)&id=eq.3")
    assert body == [{"title": "Barry Lyndon", "notes": [{"body": "long"}]}]


async def test_views_with_joins_and_subqueries_trace_their_top_level_columns(compat: Client) -> None:
    status, body, _ = await get(
        compat, "cast_films?select=title,director,cast_size,roles(character)&id=eq.1&roles.order=character"
    )
    assert status == 200, body
    assert body == [
        {
            "title": "The Shining",
            "director": "Kubrick",
            "cast_size": 2,
            "roles": [{"character": "Jack Torrance"}, {"character": "Wendy Torrance"}],
        }
    ]
    # `director` shows directors.name, which no key references: no relationship through it.
    status, body, _ = await get(compat, "cast_films?select=title,directors(name)")
    assert (status, body["code"]) == (400, "PGRST200")


async def test_put_on_a_view_uses_the_traced_primary_key(compat: Client) -> None:
    response = await compat.put(
        "/rest/v1/film_view?id=eq.9",
        json={"id": 9, "title": "Put through a view", "director_id": 2, "year": 2001},
        headers={**SERVICE, "Prefer": "return=representation"},
    )
    assert response.status == 200, await response.text()
    assert await response.json() == [{"id": 9, "title": "Put through a view", "director_id": 2, "year": 2001}]
    options = await compat.options("/rest/v1/film_view", headers=ANON)
    assert options.headers["Allow"] == "OPTIONS,GET,HEAD,POST,PUT,PATCH,DELETE"
    await compat.delete("/rest/v1/films?id=eq.9", headers=SERVICE)


# --- hints, self-references, empty embeds --------------------------------------------------


async def test_hints_by_constraint_name_and_constraint_as_target(compat: Client) -> None:
    status, body, _ = await get(
        compat, "best_friends?select=id,users!best_friends_first_user_fkey(username)&order=id"
    )
    assert (status, body) == (
        200,
        [{"id": 1, "users": {"username": "ann"}}, {"id": 2, "users": {"username": "cy"}}],
    )
    status, body, _ = await get(
        compat, "best_friends?select=id,best_friends_second_user_fkey(username)&id=eq.1"
    )
    assert body == [{"id": 1, "best_friends_second_user_fkey": {"username": "bob"}}]
    # From the referenced side, the constraint names the one-to-many relationship.
    status, body, _ = await get(compat, "users?select=username,best_friends_first_user_fkey(id)&id=eq.1")
    assert body == [{"username": "ann", "best_friends_first_user_fkey": [{"id": 1}]}]


async def test_ambiguous_embed_lists_the_candidates_as_postgrest(compat: Client) -> None:
    status, body, _ = await get(compat, "best_friends?select=users(*)")
    assert status == 300
    assert body == {
        "code": "PGRST201",
        "message": "Could not embed because more than one relationship was found for "
        "'best_friends' and 'users'",
        "details": [
            {
                "cardinality": "many-to-one",
                "embedding": "best_friends with users",
                "relationship": "best_friends_first_user_fkey using best_friends(first_user) and users(id)",
            },
            {
                "cardinality": "many-to-one",
                "embedding": "best_friends with users",
                "relationship": "best_friends_second_user_fkey using best_friends(second_user) and users(id)",
            },
        ],
        "hint": "Try changing 'users' to one of the following: 'users!best_friends_first_user_fkey', "
        "'users!best_friends_second_user_fkey'. Find the desired relationship in the 'details' key.",
    }


async def test_self_reference_table_name_is_children_column_is_parent(compat: Client) -> None:
    status, body, _ = await get(compat, "family?select=name,family(name),parent_id(name)&id=eq.2")
    assert status == 200, body
    assert body == [{"name": "Mum", "family": [{"name": "Kid"}], "parent_id": {"name": "Grandma"}}]
    status, body, _ = await get(compat, "family?select=name,children:family!parent_id(name)&id=eq.1")
    assert body == [{"name": "Grandma", "children": [{"name": "Mum"}, {"name": "Aunt"}]}]


async def test_empty_embed_filters_without_adding_the_key(compat: Client) -> None:
    status, body, _ = await get(compat, "films?select=title,roles!inner()&roles.character=like.Wendy*")
    assert (status, body) == (200, [{"title": "The Shining"}])
    status, body, _ = await get(compat, "films?select=id,directors()&directors=is.null")
    assert body == [{"id": 4}]


# --- aggregates and spreads ----------------------------------------------------------------


async def test_bare_count_in_an_embed_works_with_aggregates_disabled(compat: Client) -> None:
    status, body, _ = await get(compat, "films?select=title,roles(count)&order=id&limit=2")
    assert status == 200, body
    assert body == [
        {"title": "The Shining", "roles": [{"count": 2}]},
        {"title": "Cleo from 5 to 7", "roles": [{"count": 1}]},
    ]
    status, body, _ = await get(compat, "films?select=roles(character.count())")
    assert (status, body["code"]) == (400, "PGRST123")


async def test_aggregates_grouped_by_a_spread_embed(compat_start: Start) -> None:
    api = await compat_start(aggregates_enabled=True)
    status, body, _ = await get(api, "films?select=budget.sum(),...directors(name)&director_id=not.is.null")
    assert status == 200, body
    assert sorted(body, key=lambda row: row["name"]) == [
        {"sum": 30, "name": "Kubrick"},
        {"sum": 1, "name": "Varda"},
    ]
    # An aggregate inside the spread is taken over the parent's rows.
    status, body, _ = await get(api, "roles?select=character.count(),...films(title)&film_id=eq.1")
    assert (status, body) == (200, [{"count": 2, "title": "The Shining"}])


async def test_to_one_spread_with_embed_filters(compat: Client) -> None:
    status, body, _ = await get(compat, "films?select=id,...directors(name)&directors=is.null")
    assert (status, body) == (200, [{"id": 4, "name": None}])
    status, body, _ = await get(compat, "films?select=id,...directors!inner(name)&directors.name=eq.Varda")
    assert (status, body) == (200, [{"id": 2, "name": "Varda"}])


async def test_writes_return_computed_fields(compat: Client) -> None:
    response = await compat.post(
        "/rest/v1/films?select=id,full_title",
        json={"id": 20, "title": "Written", "year": 2020},
        headers={**SERVICE, "Prefer": "return=representation"},
    )
    assert response.status == 201, await response.text()
    assert await response.json() == [{"id": 20, "full_title": "Written (2020)"}]
    await compat.delete("/rest/v1/films?id=eq.20", headers=SERVICE)


async def test_to_many_spread_is_arrays_in_13_and_pgrst119_in_12(compat_start: Start) -> None:
    api = await compat_start()
    status, body, _ = await get(api, "directors?select=name,...films(title,year)&id=in.(1,3)&order=id")
    assert status == 200, body
    assert body == [
        {"name": "Kubrick", "title": ["The Shining", "Barry Lyndon"], "year": [1980, 1975]},
        {"name": "Nobody", "title": [], "year": []},
    ]
    old = await compat_start(postgrest_version=12)
    status, body, _ = await get(old, "directors?select=name,...films(title)")
    assert status == 400
    assert body == {
        "code": "PGRST119",
        "message": "A spread operation on 'films' is not possible",
        "details": "'directors' and 'films' do not form a many-to-one or one-to-one relationship",
        "hint": None,
    }


async def test_aggregate_errors_name_the_relation_as_postgrest_aliases_it(compat_start: Start) -> None:
    api = await compat_start(aggregates_enabled=True)
    status, body, _ = await get(api, "films?select=title,budget.sum()&order=year")
    assert status == 400
    assert body["code"] == "42803"
    assert (
        body["message"]
        == 'column "films.year" must appear in the GROUP BY clause or be used in an aggregate function'
    )


# --- error texts ----------------------------------------------------------------------------


async def test_singular_error_text(compat: Client) -> None:
    status, body, _ = await get(compat, "films?id=gt.1", {"Accept": "application/vnd.pgrst.object+json"})
    assert status == 406
    assert body == {
        "code": "PGRST116",
        "message": "Cannot coerce the result to a single JSON object",
        "details": "The result contains 3 rows",
        "hint": None,
    }


async def test_singular_error_text_of_postgrest_12(compat_start: Start) -> None:
    api = await compat_start(postgrest_version=12)
    status, body, _ = await get(api, "films?id=lt.0", {"Accept": "application/vnd.pgrst.object+json"})
    assert (status, body) == (
        406,
        {
            "code": "PGRST116",
            "message": "JSON object requested, multiple (or no) rows returned",
            "details": "The result contains 0 rows",
            "hint": None,
        },
    )


async def test_missing_relationship_hint_suggests_the_close_name(compat: Client) -> None:
    status, body, _ = await get(compat, "films?select=*,director(*)x")
    status, body, _ = await get(compat, "films?select=title,directorz(name)")
    assert status == 400
    assert body == {
        "code": "PGRST200",
        "message": "Could not find a relationship between 'films' and 'directorz' in the schema cache",
        "details": "Searched for a foreign key relationship between 'films' and 'directorz' in the schema "
        "'public', but no matches were found.",
        "hint": "Perhaps you meant 'directors' instead of 'directorz'.",
    }
    status, body, _ = await get(compat, "films?select=title,zzz(name)")
    assert body["hint"] is None


async def test_missing_table_hint_names_only_relations_the_caller_may_use(compat: Client) -> None:
    status, body, _ = await get(compat, "secret_plan")
    assert status == 404
    # anon has no privilege on secret_plans: its name must not leak.
    assert body == {
        "code": "PGRST205",
        "message": "Could not find the table 'public.secret_plan' in the schema cache",
        "details": None,
        "hint": None,
    }
    response = await compat.get("/rest/v1/secret_plan", headers=SERVICE)
    assert (await response.json())["hint"] == "Perhaps you meant the table 'public.secret_plans'"
    status, body, _ = await get(compat, "flims")
    assert body["hint"] == "Perhaps you meant the table 'public.films'"
