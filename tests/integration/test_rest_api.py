"""The data API end to end: HTTP in, role-switched SQL against real PostgreSQL, JSON out."""

from __future__ import annotations

import time
from typing import Any

import jwt
import pytest

from harness import JWT_SECRET
from rest_support import ALICE, ANON, BOB, SERVICE, Client, user


async def get(api: Client, path: str, headers: dict[str, str] | None = None) -> tuple[int, Any, Any]:
    response = await api.get(path, headers=headers or ANON)
    body = await response.json() if response.content_length != 0 else None
    return response.status, body, response.headers


async def test_select_columns_filters_and_order(api: Client) -> None:
    status, body, headers = await get(api, "/rest/v1/films?select=id,title&year=gte.1970&order=year.desc")
    assert status == 200
    assert body == [{"id": 1, "title": "The Shining"}, {"id": 3, "title": "Barry Lyndon"}]
    assert headers["Content-Range"] == "0-1/*"
    assert "transaction;dur=" in headers["Server-Timing"]


async def test_both_mounts_serve_the_same(api: Client) -> None:
    _, rest_body, _ = await get(api, "/rest/v1/films?select=id&order=id")
    _, fluxbase_body, _ = await get(api, "/api/v1/tables/films?select=id&order=id")
    assert rest_body == fluxbase_body == [{"id": 1}, {"id": 2}, {"id": 3}, {"id": 4}]


@pytest.mark.parametrize(
    ("query", "ids"),
    [
        ("title=eq.Barry Lyndon", [3]),
        ("title=neq.Barry Lyndon", [1, 2, 4]),
        ("year=gt.1975", [1]),
        ("year=lt.1975", [2]),
        ("year=lte.1975", [2, 3]),
        ("title=like.*on", [3]),
        ("title=ilike.the*", [1]),
        ("title=match.^C", [2]),
        ("title=imatch.^b", [3]),
        ("id=in.(1,3)", [1, 3]),
        ("id=not.in.(1,3)", [2, 4]),
        ("year=is.null", [4]),
        ("year=not.is.null", [1, 2, 3]),
        ("year=isdistinct.1980", [2, 3, 4]),
        ("tags=cs.{classic}", [1, 3]),
        ("tags=cd.{drama,classic}", [2, 3, 4]),
        ("tags=ov.{horror,drama}", [1, 2, 3]),
        ("tsv=fts.shining", [1]),
        ("tsv=wfts(english).barry", [3]),
        ("title=plfts.lyndon barry", [3]),
        ("data->>lang=eq.fr", [2]),
        ("data->budget=gt.10", [1, 3]),
        ("rating=gte.8", [1, 3]),
        ("released=lt.1970-01-01", [2]),
        ("title=like(any).{*Shining,Cleo*}", [1, 2]),
        ("or=(year.lt.1965,id.eq.4)", [2, 4]),
        ("and=(year.gt.1960,or(id.eq.1,id.eq.2))", [1, 2]),
        ("not.or=(year.lt.1965,id.eq.4)", [1, 3]),
    ],
)
async def test_every_filter(api: Client, query: str, ids: list[int]) -> None:
    status, body, _ = await get(api, f"/rest/v1/films?select=id&order=id&{query}")
    assert status == 200, body
    assert [row["id"] for row in body] == ids


async def test_renames_casts_and_json_paths(api: Client) -> None:
    _, body, _ = await get(
        api, "/rest/v1/films?select=name:title,year::text,data->>lang,budget:data->budget&id=eq.1"
    )
    assert body == [{"name": "The Shining", "year": "1980", "lang": "en", "budget": 19}]


async def test_embeds_of_every_kind(api: Client) -> None:
    query = "select=title,directors(last_name),actors(name),roles(character),technical_specs(runtime)&id=eq.1"
    _, body, _ = await get(api, f"/rest/v1/films?{query}")
    assert body == [
        {
            "title": "The Shining",
            "directors": {"last_name": "Kubrick"},
            "actors": [{"name": "Jack Nicholson"}],
            "roles": [{"character": "Jack Torrance"}],
            "technical_specs": {"runtime": 146},
        }
    ]
    _, directors, _ = await get(
        api, "/rest/v1/directors?select=last_name,films(title)&films.order=year&order=id"
    )
    assert directors[0] == {
        "last_name": "Kubrick",
        "films": [{"title": "Barry Lyndon"}, {"title": "The Shining"}],
    }
    assert directors[2] == {"last_name": "Nobody", "films": []}


async def test_inner_embeds_null_filters_and_spread(api: Client) -> None:
    _, inner, _ = await get(api, "/rest/v1/directors?select=last_name,films!inner(id)&films.year=lt.1970")
    assert inner == [{"last_name": "Varda", "films": [{"id": 2}]}]
    _, without, _ = await get(api, "/rest/v1/films?select=id,directors(id)&directors=is.null")
    assert without == [{"id": 4, "directors": None}]
    _, spread, _ = await get(api, "/rest/v1/films?select=title,...directors(director:last_name)&id=eq.2")
    assert spread == [{"title": "Cleo from 5 to 7", "director": "Varda"}]


async def test_pagination_counts_and_ranges(api: Client) -> None:
    response = await api.get(
        "/rest/v1/films?select=id&order=id&limit=2&offset=1", headers={**ANON, "Prefer": "count=exact"}
    )
    assert response.status == 206
    assert response.headers["Content-Range"] == "1-2/4"
    assert await response.json() == [{"id": 2}, {"id": 3}]
    ranged = await api.get(
        "/rest/v1/films?select=id&order=id", headers={**ANON, "Range": "0-0", "Prefer": "count=exact"}
    )
    assert ranged.headers["Content-Range"] == "0-0/4"
    planned = await api.get("/rest/v1/films?select=id", headers={**ANON, "Prefer": "count=planned"})
    assert planned.headers["Content-Range"].split("/")[1].isdigit()
    past = await api.get("/rest/v1/films?offset=10", headers={**ANON, "Prefer": "count=exact"})
    assert past.status == 416
    assert (await past.json())["code"] == "PGRST103"


async def test_singular_csv_and_head(api: Client) -> None:
    single = await api.get(
        "/rest/v1/films?select=title&id=eq.1", headers={**ANON, "Accept": "application/vnd.pgrst.object+json"}
    )
    assert single.status == 200
    assert await single.json() == {"title": "The Shining"}
    many = await api.get(
        "/rest/v1/films?select=title", headers={**ANON, "Accept": "application/vnd.pgrst.object+json"}
    )
    assert many.status == 406
    assert (await many.json())["code"] == "PGRST116"
    csv = await api.get(
        "/rest/v1/films?select=id,title&id=lte.2&order=id", headers={**ANON, "Accept": "text/csv"}
    )
    # PostgREST's CSV: record-style quoting (fields with spaces are quoted), no final newline.
    assert await csv.text() == 'id,title\n1,"The Shining"\n2,"Cleo from 5 to 7"'
    head = await api.head("/rest/v1/films", headers=ANON)
    assert head.status == 200
    assert await head.read() == b""


async def test_errors_have_postgrest_shape(api: Client) -> None:
    status, body, _ = await get(api, "/rest/v1/films?select=nope")
    assert (status, body["code"]) == (400, "42703")
    assert set(body) == {"code", "message", "details", "hint"}
    status, body, _ = await get(api, "/rest/v1/nope")
    assert (status, body["code"]) == (404, "PGRST205")
    status, body, _ = await get(api, "/rest/v1/films?id=eqq.1")
    assert (status, body["code"]) == (400, "PGRST100")
    status, body, _ = await get(api, "/rest/v1/films?select=id,studios(*)")
    assert (status, body["code"]) == (400, "PGRST200")


async def test_internal_schemas_are_never_reachable(api: Client) -> None:
    for schema in ("auth", "storage", "pg_catalog", "fluxbase_migrations"):
        status, body, _ = await get(api, "/rest/v1/users", {**SERVICE, "Accept-Profile": schema})
        assert (status, body["code"]) == (406, "PGRST106"), schema
    status, _, _ = await get(api, "/rest/v1/pg_authid", SERVICE)
    assert status == 404


async def test_bad_tokens_are_refused_before_the_database(api: Client) -> None:
    forged = jwt.encode({"role": "service_role", "exp": int(time.time()) + 60}, "x" * 40, algorithm="HS256")
    for headers in ({"apikey": forged}, {"Authorization": "Bearer nonsense"}):
        response = await api.get("/rest/v1/films", headers=headers)
        assert response.status == 401
        assert (await response.json())["code"] == "PGRST301"
        assert response.headers["WWW-Authenticate"].startswith("Bearer")
    postgres = jwt.encode({"role": "postgres", "exp": int(time.time()) + 60}, JWT_SECRET, algorithm="HS256")
    assert (await api.get("/rest/v1/films", headers={"apikey": postgres})).status == 401


async def test_grants_decide_what_anon_may_do(api: Client) -> None:
    status, body, _ = await get(api, "/rest/v1/todos")
    assert (status, body["code"]) == (401, "42501")  # anonymous: 401, as PostgREST
    response = await api.post("/rest/v1/films", json={"id": 9, "title": "x"}, headers=ANON)
    assert response.status == 401


async def test_insert_update_delete_round_trip(api: Client) -> None:
    headers = {**user(ALICE), "Prefer": "return=representation"}
    created = await api.post(
        "/rest/v1/directors?select=id,last_name", json={"id": 10, "last_name": "Lynch"}, headers=headers
    )
    assert created.status == 201, await created.text()
    assert await created.json() == [{"id": 10, "last_name": "Lynch"}]
    bulk = await api.post(
        "/rest/v1/directors",
        json=[{"id": 11, "last_name": "A"}, {"id": 12, "last_name": "B"}],
        headers=user(ALICE),
    )
    assert bulk.status == 201
    assert await bulk.read() == b""
    updated = await api.patch("/rest/v1/directors?id=gte.11", json={"last_name": "Z"}, headers=headers)
    assert updated.status == 200
    assert sorted(r["id"] for r in await updated.json()) == [11, 12]
    assert updated.headers["Content-Range"] == "0-1/*"
    deleted = await api.delete("/rest/v1/directors?id=gte.10", headers=user(ALICE))
    assert deleted.status == 204
    _, left, _ = await get(api, "/rest/v1/directors?id=gte.10")
    assert left == []


async def test_upserts_put_and_location(api: Client) -> None:
    merge = {**user(ALICE), "Prefer": "resolution=merge-duplicates,return=representation"}
    first = await api.post("/rest/v1/directors", json={"id": 20, "last_name": "One"}, headers=merge)
    again = await api.post("/rest/v1/directors", json={"id": 20, "last_name": "Two"}, headers=merge)
    assert (await first.json(), await again.json()) == (
        [{"id": 20, "last_name": "One"}],
        [{"id": 20, "last_name": "Two"}],
    )
    ignore = {**user(ALICE), "Prefer": "resolution=ignore-duplicates,return=representation"}
    ignored = await api.post("/rest/v1/directors", json={"id": 20, "last_name": "Three"}, headers=ignore)
    assert await ignored.json() == []
    put = await api.put(
        "/rest/v1/directors?id=eq.21", json={"id": 21, "last_name": "Put"}, headers=user(ALICE)
    )
    assert put.status == 204
    mismatch = await api.put(
        "/rest/v1/directors?id=eq.22", json={"id": 23, "last_name": "x"}, headers=user(ALICE)
    )
    assert (await mismatch.json())["code"] == "PGRST115"
    located = await api.post(
        "/rest/v1/directors",
        json={"id": 24, "last_name": "L"},
        headers={**user(ALICE), "Prefer": "return=headers-only"},
    )
    assert located.headers["Location"] == "/directors?id=eq.24"
    await api.delete("/rest/v1/directors?id=gte.20", headers=user(ALICE))


async def test_write_errors(api: Client) -> None:
    bad_json = await api.post(
        "/rest/v1/directors", data=b"{nope", headers={**user(ALICE), "Content-Type": "application/json"}
    )
    assert (bad_json.status, (await bad_json.json())["code"]) == (400, "PGRST102")
    unknown = await api.post("/rest/v1/directors", json={"id": 30, "shoe_size": 4}, headers=user(ALICE))
    assert (unknown.status, (await unknown.json())["code"]) == (400, "PGRST204")
    duplicate = await api.post(
        "/rest/v1/directors", json={"id": 1, "last_name": "again"}, headers=user(ALICE)
    )
    assert (duplicate.status, (await duplicate.json())["code"]) == (409, "23505")
    dry = await api.post(
        "/rest/v1/directors",
        json={"id": 31, "last_name": "dry"},
        headers={**user(ALICE), "Prefer": "tx=rollback"},
    )
    assert dry.status == 201
    _, after, _ = await get(api, "/rest/v1/directors?id=eq.31")
    assert after == []


async def test_rls_keeps_users_apart(api: Client) -> None:
    alice, bob = user(ALICE), user(BOB)
    await api.post("/rest/v1/todos", json={"title": "alice's"}, headers=alice)
    await api.post("/rest/v1/todos", json={"title": "bob's"}, headers=bob)
    _, mine, _ = await get(api, "/rest/v1/todos?select=title", alice)
    assert mine == [{"title": "alice's"}]
    # Filters cannot reach the other's rows, and writes to them affect nothing.
    _, probe, _ = await get(api, "/rest/v1/todos?title=eq.bob's", alice)
    assert probe == []
    hijack = await api.patch(
        "/rest/v1/todos?title=eq.bob's",
        json={"done": True},
        headers={**alice, "Prefer": "return=representation"},
    )
    assert await hijack.json() == []
    forged = await api.post("/rest/v1/todos", json={"title": "planted", "user_id": BOB}, headers=alice)
    assert forged.status == 403
    assert (await forged.json())["code"] == "42501"
    removed = await api.delete(
        "/rest/v1/todos?title=eq.bob's", headers={**alice, "Prefer": "return=representation"}
    )
    assert await removed.json() == []
    _, everything, _ = await get(api, "/rest/v1/todos?select=title&order=title", SERVICE)
    assert [t["title"] for t in everything] == ["alice's", "bob's"]


async def test_options_lists_the_allowed_methods(api: Client) -> None:
    table = await api.options("/rest/v1/films", headers=ANON)
    assert table.status == 200
    assert table.headers["Allow"] == "OPTIONS,GET,HEAD,POST,PUT,PATCH,DELETE"
    volatile = await api.options("/rest/v1/rpc/touch", headers=ANON)
    assert volatile.headers["Allow"] == "OPTIONS,POST"
    stable = await api.options("/rest/v1/rpc/add", headers=ANON)
    assert stable.headers["Allow"] == "OPTIONS,GET,HEAD,POST"


async def test_cors_preflight_and_exposed_headers(api: Client) -> None:
    preflight = await api.options(
        "/rest/v1/films",
        headers={
            "Origin": "https://app.example.org",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "apikey, authorization, prefer",
        },
    )
    assert preflight.status == 204
    assert preflight.headers["Access-Control-Allow-Origin"] == "https://app.example.org"
    assert "prefer" in preflight.headers["Access-Control-Allow-Headers"]
    assert "PATCH" in preflight.headers["Access-Control-Allow-Methods"]
    actual = await api.get(
        "/rest/v1/films?select=id&limit=1", headers={**ANON, "Origin": "https://app.example.org"}
    )
    assert actual.headers["Access-Control-Allow-Origin"] == "https://app.example.org"
    assert "Content-Range" in actual.headers["Access-Control-Expose-Headers"]


async def test_order_by_a_to_one_embed(api: Client) -> None:
    query = "select=id,directors(last_name)&director_id=not.is.null&order=directors(last_name).desc,id"
    _, body, _ = await get(api, f"/rest/v1/films?{query}")
    assert [row["id"] for row in body] == [2, 1, 3]  # Varda, then Kubrick's two by id
    status, error, _ = await get(api, "/rest/v1/directors?select=id,films(id)&order=films(year)")
    assert (status, error["code"]) == (400, "PGRST118")


async def test_columns_on_conflict_and_missing_default(api: Client) -> None:
    alice = user(ALICE)
    representation = {**alice, "Prefer": "return=representation"}
    # columns= picks what is written; other keys in the body are ignored.
    picked = await api.post(
        "/rest/v1/films?columns=id,title&select=id,title,tags",
        json=[{"id": 50, "title": "Picked", "year": 1999}],
        headers=representation,
    )
    assert await picked.json() == [{"id": 50, "title": "Picked", "tags": []}]
    # on_conflict on a non-primary unique column.
    upsert = {**alice, "Prefer": "resolution=merge-duplicates,return=representation"}
    merged = await api.post(
        "/rest/v1/films?on_conflict=id&select=id,title", json={"id": 50, "title": "Merged"}, headers=upsert
    )
    assert await merged.json() == [{"id": 50, "title": "Merged"}]
    # missing=default: an absent key takes the column default, not NULL (tags is NOT NULL DEFAULT '{}').
    defaults = {**alice, "Prefer": "missing=default,return=representation"}
    bulk = [{"id": 51, "title": "A", "tags": ["x"]}, {"id": 52, "title": "B"}]
    created = await api.post(
        "/rest/v1/films?columns=id,title,tags&select=id,tags", json=bulk, headers=defaults
    )
    assert created.status == 201, await created.text()
    assert await created.json() == [{"id": 51, "tags": ["x"]}, {"id": 52, "tags": []}]
    without = await api.post(
        "/rest/v1/films?columns=id,title,tags", json=[{"id": 53, "title": "C"}], headers=alice
    )
    assert (without.status, (await without.json())["code"]) == (400, "23502")  # NULL into NOT NULL
    await api.delete("/rest/v1/films?id=gte.50", headers=alice)


async def test_max_affected_rolls_back(api: Client) -> None:
    strict = {**user(ALICE), "Prefer": "handling=strict,max-affected=1"}
    await api.post(
        "/rest/v1/directors",
        json=[{"id": 60, "last_name": "x"}, {"id": 61, "last_name": "y"}],
        headers=user(ALICE),
    )
    refused = await api.patch("/rest/v1/directors?id=gte.60", json={"last_name": "z"}, headers=strict)
    assert (refused.status, (await refused.json())["code"]) == (400, "PGRST124")
    _, unchanged, _ = await get(api, "/rest/v1/directors?id=gte.60&select=last_name&order=id")
    assert unchanged == [{"last_name": "x"}, {"last_name": "y"}]
    await api.delete("/rest/v1/directors?id=gte.60", headers=user(ALICE))


async def test_estimated_count(api: Client) -> None:
    response = await api.get(
        "/rest/v1/films?select=id&limit=1", headers={**ANON, "Prefer": "count=estimated"}
    )
    # With no max_rows PostgREST takes the larger of the exact count and the planner's estimate
    # (tests/integration/test_rest_compat_writes.py checks both sides of max_rows).
    first, total = response.headers["Content-Range"].split("/")
    assert first == "0-0" and int(total) >= 4
    assert response.headers["Preference-Applied"] == "count=estimated"


async def test_unsupported_methods_are_405(api: Client) -> None:
    response = await api.request("TRACE", "/rest/v1/films", headers=ANON)
    assert response.status == 405
    assert (await response.json())["code"] == "PGRST117"
    rpc = await api.delete("/rest/v1/rpc/add", headers=ANON)
    assert (rpc.status, (await rpc.json())["code"]) == (405, "PGRST101")
