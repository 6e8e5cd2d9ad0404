"""The data API's api.* settings and per-request preferences, end to end."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from rest_support import ANON, Client

Start = Callable[..., Awaitable[Client]]


async def test_max_rows_caps_every_read(api_with: Start) -> None:
    api = await api_with(max_rows=2)
    response = await api.get("/rest/v1/films?select=id&order=id", headers={**ANON, "Prefer": "count=exact"})
    assert await response.json() == [{"id": 1}, {"id": 2}]
    assert response.headers["Content-Range"] == "0-1/4"


async def test_aggregates_are_off_unless_enabled(api_with: Start) -> None:
    off = await api_with()
    refused = await off.get("/rest/v1/films?select=director_id,id.count()", headers=ANON)
    assert (refused.status, (await refused.json())["code"]) == (400, "PGRST123")
    on = await api_with(aggregates_enabled=True)
    response = await on.get(
        "/rest/v1/films?select=director_id,id.count()&director_id=not.is.null&order=director_id", headers=ANON
    )
    assert await response.json() == [{"director_id": 1, "count": 2}, {"director_id": 2, "count": 1}]
    total = await on.get("/rest/v1/films?select=rating.max(),rating.avg()::numeric(3,1)", headers=ANON)
    assert await total.json() == [{"max": 8.4, "avg": 8.1}]


async def test_pre_request_function_runs_first(api_with: Start) -> None:
    api = await api_with(pre_request="public.check_request")
    allowed = await api.get("/rest/v1/films?select=id&limit=1", headers=ANON)
    assert allowed.status == 200
    assert allowed.headers["X-Pre-Request"] == "ran"
    blocked = await api.get("/rest/v1/films", headers={**ANON, "X-Block": "yes"})
    assert blocked.status == 403
    assert (await blocked.json())["message"] == "Blocked by pre-request"


async def test_tx_override_can_be_switched_off(api_with: Start, rest_dsn: str) -> None:
    api = await api_with(tx_override=False)
    from rest_support import ALICE, user

    kept = await api.post(
        "/rest/v1/directors",
        json={"id": 40, "last_name": "kept"},
        headers={**user(ALICE), "Prefer": "tx=rollback"},
    )
    assert kept.status == 201
    assert "tx=" not in kept.headers.get("Preference-Applied", "")
    found = await api.get("/rest/v1/directors?id=eq.40", headers=ANON)
    assert await found.json() == [{"id": 40, "last_name": "kept"}]
    await api.delete("/rest/v1/directors?id=eq.40", headers=user(ALICE))


async def test_timezone_preference(api_with: Start) -> None:
    api = await api_with()
    response = await api.post(
        "/rest/v1/rpc/now_text", json={}, headers={**ANON, "Prefer": "timezone=Asia/Tokyo"}
    )
    assert response.status == 200, await response.text()
    assert (await response.json()).endswith("+09")
    bad = await api.get("/rest/v1/films", headers={**ANON, "Prefer": "timezone=Mars/Olympus"})
    assert bad.status == 400


async def test_plan_media_type_is_opt_in(api_with: Start) -> None:
    accept = {**ANON, "Accept": "application/vnd.pgrst.plan+json"}
    off = await api_with()
    assert (await off.get("/rest/v1/films?id=eq.1", headers=accept)).status == 406
    on = await api_with(plan_enabled=True)
    response = await on.get("/rest/v1/films?id=eq.1", headers=accept)
    assert response.status == 200, await response.text()
    assert response.headers["Content-Type"].startswith("application/vnd.pgrst.plan+json")
    assert "Plan" in (await response.json())[0]


async def test_second_schema_by_profile(api_with: Start, rest_dsn: str) -> None:
    import psycopg

    with psycopg.connect(rest_dsn, autocommit=True) as conn:
        conn.execute("create schema if not exists api_v2")
        conn.execute("create table if not exists api_v2.items (id int primary key)")
        conn.execute("insert into api_v2.items values (7) on conflict do nothing")
        conn.execute("grant usage on schema api_v2 to anon; grant select on api_v2.items to anon")
    api = await api_with(schemas=("public", "api_v2"))
    response = await api.get("/rest/v1/items", headers={**ANON, "Accept-Profile": "api_v2"})
    assert await response.json() == [{"id": 7}]
    default = await api.get("/rest/v1/items", headers=ANON)
    assert default.status == 404  # the default schema (public) has no such table
