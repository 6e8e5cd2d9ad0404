"""Issue 11, data API: writes, counting and formats, each compared with PostgREST's documented answer.

The fixture is tests/fixtures/rest_compat_schema.sql (tests/rest_compat_support.py).
"""

from __future__ import annotations

import psycopg
import pytest

from rest_compat_support import Start
from rest_support import ANON, Client

# --- writes ---------------------------------------------------------------------------------


async def test_bulk_insert_with_missing_default_takes_column_defaults(compat: Client) -> None:
    response = await compat.post(
        "/rest/v1/items?columns=name,qty,note&select=name,qty,note",
        json=[{"name": "bolt"}, {"name": "nut", "qty": 2, "note": "small"}],
        headers={**ANON, "Prefer": "missing=default, return=representation"},
    )
    assert response.status == 201, await response.text()
    assert await response.json() == [
        {"name": "bolt", "qty": 7, "note": None},
        {"name": "nut", "qty": 2, "note": "small"},
    ]
    assert response.headers["Preference-Applied"] == "missing=default, return=representation"
    assert response.headers["Content-Range"] == "*/*"
    # Without it, absent keys are NULL (here refused by NOT NULL, as in PostgREST).
    response = await compat.post("/rest/v1/items?columns=name,qty", json=[{"name": "washer"}], headers=ANON)
    assert response.status == 400 and (await response.json())["code"] == "23502"


async def test_upsert_of_only_the_conflict_columns_returns_the_row(compat: Client) -> None:
    response = await compat.post(
        "/rest/v1/tags?on_conflict=name&select=id,name,hits",
        json=[{"name": "classic"}, {"name": "noir"}],
        headers={**ANON, "Prefer": "resolution=merge-duplicates,return=representation"},
    )
    assert response.status == 201, await response.text()
    body = await response.json()
    assert [row["name"] for row in body] == ["classic", "noir"]
    assert body[0] == {"id": 1, "name": "classic", "hits": 0}  # the existing row, not nothing
    assert response.headers["Preference-Applied"] == "resolution=merge-duplicates, return=representation"


async def test_csv_request_body_inserts_rows(compat: Client) -> None:
    response = await compat.post(
        "/rest/v1/items?select=name,qty,note",
        data=b'name,qty,note\nscrew,3,NULL\n"hex, key",4,"says ""hi"""',
        headers={**ANON, "Content-Type": "text/csv", "Prefer": "return=representation"},
    )
    assert response.status == 201, await response.text()
    assert await response.json() == [
        {"name": "screw", "qty": 3, "note": None},
        {"name": "hex, key", "qty": 4, "note": 'says "hi"'},
    ]
    bad = await compat.post(
        "/rest/v1/items", data=b"name,qty\nx", headers={**ANON, "Content-Type": "text/csv"}
    )
    assert bad.status == 400 and (await bad.json())["code"] == "PGRST102"


async def test_max_affected_on_rpc(compat: Client, compat_dsn: str) -> None:
    strict = {**ANON, "Prefer": "handling=strict, max-affected=2"}
    response = await compat.post("/rest/v1/rpc/bump_all", json={}, headers=strict)
    assert response.status == 400
    assert await response.json() == {
        "code": "PGRST124",
        "message": "Query result exceeds max-affected preference constraint",
        "details": "The query affects 3 rows",
        "hint": None,
    }
    with psycopg.connect(compat_dsn) as conn:
        assert conn.execute("select sum(n) from public.counters").fetchone() == (0,)  # rolled back
    response = await compat.post("/rest/v1/rpc/bump_one", json={}, headers=strict)
    assert response.status == 400
    assert await response.json() == {
        "code": "PGRST128",
        "message": "Function must return SETOF or TABLE when max-affected preference is used "
        "with handling=strict",
        "details": None,
        "hint": None,
    }
    lenient = await compat.post(
        "/rest/v1/rpc/bump_all", json={}, headers={**ANON, "Prefer": "max-affected=2"}
    )
    assert lenient.status == 200  # without handling=strict the preference is ignored, as upstream


async def test_rpc_content_range_and_exact_count(compat: Client) -> None:
    response = await compat.get(
        "/rest/v1/rpc/numbers_upto?n=10&limit=3&offset=2", headers={**ANON, "Prefer": "count=exact"}
    )
    assert response.status == 206
    assert await response.json() == [3, 4, 5]
    assert response.headers["Content-Range"] == "2-4/10"
    assert response.headers["Preference-Applied"] == "count=exact"
    response = await compat.get("/rest/v1/rpc/numbers_upto?n=4", headers=ANON)
    assert (response.status, response.headers["Content-Range"]) == (200, "0-3/*")
    response = await compat.get(
        "/rest/v1/rpc/film_stats?select=film_id&limit=1", headers={**ANON, "Prefer": "count=exact"}
    )
    assert (response.status, response.headers["Content-Range"]) == (206, "0-0/4")
    # A single value is a range of one row; past the end is 416.
    response = await compat.get(
        "/rest/v1/rpc/numbers_upto?n=2&offset=5", headers={**ANON, "Prefer": "count=exact"}
    )
    assert response.status == 416 and (await response.json())["code"] == "PGRST103"


# --- counting ----------------------------------------------------------------------------------


async def test_exact_count_without_a_range_needs_no_count_query(compat_start: Start) -> None:
    api = await compat_start(plan_enabled=True)
    counted = {**ANON, "Prefer": "count=exact"}
    response = await api.get("/rest/v1/films?select=id", headers=counted)
    assert (response.status, response.headers["Content-Range"]) == (200, "0-3/4")
    response = await api.get("/rest/v1/films?select=id&limit=2", headers=counted)
    assert (response.status, response.headers["Content-Range"]) == (206, "0-1/4")

    async def scans(query: str) -> int:
        explained = await api.get(
            "/rest/v1/films?" + query, headers={**counted, "Accept": "application/vnd.pgrst.plan+text"}
        )
        assert explained.status == 200
        return (await explained.text()).count("Seq Scan on films")

    # The whole result is one page: its size is the total, and films is read once.
    assert await scans("select=id") == 1
    # A page of it needs the count query too.
    assert await scans("select=id&limit=2") == 2


async def test_estimated_count_uses_the_planner_past_max_rows(compat_start: Start, compat_dsn: str) -> None:
    with psycopg.connect(compat_dsn, autocommit=True) as conn:
        # The planner now believes readings holds many more rows than its 50.
        conn.execute("update pg_class set reltuples = 40000 where oid = 'public.readings'::regclass")
    try:
        api = await compat_start(max_rows=10)
        response = await api.get("/rest/v1/readings?select=id", headers={**ANON, "Prefer": "count=estimated"})
        assert response.status == 206
        first, total = response.headers["Content-Range"].split("/")
        assert first == "0-9"
        assert int(total) > 1000  # the planner's estimate, not the exact 50
        assert response.headers["Preference-Applied"] == "count=estimated"
        # Under max_rows the exact count stands.
        small = await api.get(
            "/rest/v1/readings?select=id&v=eq.3", headers={**ANON, "Prefer": "count=estimated"}
        )
        assert small.headers["Content-Range"] == "0-6/7"
    finally:
        with psycopg.connect(compat_dsn, autocommit=True) as conn:
            conn.execute("analyze public.readings")


# --- formats -------------------------------------------------------------------------------------


async def test_csv_output_is_byte_compatible(compat: Client) -> None:
    response = await compat.get(
        "/rest/v1/films?select=id,title,year,data,director:directors(name)&order=id",
        headers={**ANON, "Accept": "text/csv"},
    )
    assert response.status == 200
    assert response.headers["Content-Type"] == "text/csv; charset=utf-8"
    assert await response.read() == (
        b"id,title,year,data,director\n"
        b'1,"The Shining",1980,"{""lang"": ""en"", ""note"": ""a \\\\""quoted\\\\"" one""}",'
        b'"{""name"":""Kubrick""}"\n'
        b'2,"Cleo from 5 to 7",1962,"{""lang"": ""fr""}","{""name"":""Varda""}"\n'
        b'3,"Barry Lyndon",1975,,"{""name"":""Kubrick""}"\n'
        b'4,"Untitled, maybe",,,'
    )
    empty = await compat.get("/rest/v1/films?id=eq.0", headers={**ANON, "Accept": "text/csv"})
    assert await empty.read() == b"\n"


async def test_geojson_output_with_postgis(compat: Client, compat_dsn: str) -> None:
    with psycopg.connect(compat_dsn) as conn:
        if conn.execute("select to_regclass('public.places')").fetchone() == (None,):
            pytest.skip("PostGIS is not installed (deploy/scripts/system-deps.sh test installs it)")
    response = await compat.get(
        "/rest/v1/places?select=name,geom&order=id", headers={**ANON, "Accept": "application/geo+json"}
    )
    assert response.status == 200, await response.text()
    assert response.headers["Content-Type"] == "application/geo+json; charset=utf-8"
    assert await response.json() == {
        "type": "FeatureCollection",
        "features": [
            {
                "type": "Feature",
                "geometry": {"type": "Point", "coordinates": [2.35, 48.85]},
                "properties": {"name": "Paris"},
            },
            # PostGIS's own rendering of a NULL geometry, which PostgREST passes on too.
            {"type": "Feature", "geometry": {"type": None}, "properties": {"name": "Nowhere"}},
        ],
    }


async def test_geojson_refused_where_postgis_is_missing(api: Client) -> None:
    # rest_support's database (tests/fixtures/rest_schema.sql) has no PostGIS: 406, as PostgREST.
    response = await api.get("/rest/v1/films", headers={**ANON, "Accept": "application/geo+json"})
    assert response.status == 406
    body = await response.json()
    assert body["details"] is None
    assert (body["code"], body["message"]) == (
        "PGRST107",
        "None of these media types are available: application/geo+json",
    )
