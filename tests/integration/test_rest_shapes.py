"""Cached request shapes (rest/request_cache.py) answer exactly what a fresh parse and plan would.

A shape is parsed and planned once; what must still change per request does: the caller's role
and claims (grants and RLS apply in every transaction), the headers the parse reads, and the
schema (a reload plans every shape again).
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import psycopg

from fluxbase.rest.handlers import REST
from rest_support import ALICE, ANON, BOB, SERVICE, Client, user


async def get(api: Client, path: str, headers: dict[str, str]) -> tuple[int, Any, Any]:
    response = await api.get(path, headers=headers)
    return response.status, await response.json(), response.headers


async def test_one_shape_answers_each_caller_under_their_own_role_and_rls(api: Client) -> None:
    for sub in (ALICE, BOB):
        created = await api.post("/rest/v1/todos", json={"title": f"of {sub[:4]}"}, headers=user(sub))
        assert created.status == 201
    shape = "/rest/v1/todos?select=title&order=title"
    for _ in range(2):  # the second round is served from the cache
        assert (await get(api, shape, user(ALICE)))[1] == [{"title": "of aaaa"}]
        assert (await get(api, shape, user(BOB)))[1] == [{"title": "of bbbb"}]
        status, body, _ = await get(api, shape, ANON)  # no grant for anon: refused, not cached rows
        assert status in (401, 403) and body["code"] == "42501"
        assert [t["title"] for t in (await get(api, shape, SERVICE))[1]] == ["of aaaa", "of bbbb"]
    assert len(api.server.app[REST].shapes) >= 1


async def test_headers_the_parse_reads_make_another_shape(api: Client) -> None:
    path = "/rest/v1/films?select=id&order=id&limit=2"
    _, _, plain = await get(api, path, ANON)
    _, _, counted = await get(api, path, {**ANON, "Prefer": "count=exact"})
    _, _, plain_again = await get(api, path, ANON)
    assert plain["Content-Range"].endswith("/*") and plain_again["Content-Range"] == plain["Content-Range"]
    assert not counted["Content-Range"].endswith("/*")
    single = await api.get(
        path.replace("limit=2", "limit=1"), headers={**ANON, "Accept": "application/vnd.pgrst.object+json"}
    )
    assert single.status == 200 and isinstance(await single.json(), dict)
    values = [(await get(api, f"/rest/v1/films?select=id&id=eq.{n}", ANON))[1] for n in (1, 2, 1)]
    assert values[0] == values[2] != values[1]


async def test_a_schema_reload_plans_every_shape_again(api: Client, rest_dsn: str) -> None:
    with psycopg.connect(rest_dsn, autocommit=True) as conn:
        conn.execute("create table public.shape_probe (id int primary key, a text)")
        conn.execute("insert into public.shape_probe values (1, 'x')")
        conn.execute("grant select on public.shape_probe to anon")
    path = "/rest/v1/shape_probe?id=eq.1"
    assert await _eventually(api, path, lambda body: body == [{"id": 1, "a": "x"}])
    with psycopg.connect(rest_dsn, autocommit=True) as conn:
        conn.execute("alter table public.shape_probe add column b text default 'new'")
    assert await _eventually(api, path, lambda body: body == [{"id": 1, "a": "x", "b": "new"}])


async def _eventually(api: Client, path: str, expected: Any, within: float = 10.0) -> bool:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        status, body, _ = await get(api, path, ANON)
        if status == 200 and expected(body):
            return True
        await asyncio.sleep(0.1)
    return False


async def test_writes_of_one_shape_each_write_their_own_body(api: Client) -> None:
    """A write's plan is kept per key list of its body; the values are always this request's."""
    headers = {**SERVICE, "Prefer": "return=representation"}
    rows = []
    for n in (901, 902):  # same keys: the second is planned from the cache
        created = await api.post("/rest/v1/directors", json={"id": n, "last_name": f"D{n}"}, headers=headers)
        assert created.status == 201
        rows += await created.json()
    assert rows == [{"id": 901, "last_name": "D901"}, {"id": 902, "last_name": "D902"}]
    # Other keys, the same keys in another order, an array, an unknown column: each planned as ever.
    reordered = await api.post("/rest/v1/directors", json={"last_name": "D903", "id": 903}, headers=headers)
    assert await reordered.json() == [{"id": 903, "last_name": "D903"}]
    array = await api.post("/rest/v1/directors", json=[{"id": 904, "last_name": "D904"}], headers=headers)
    assert await array.json() == [{"id": 904, "last_name": "D904"}]
    unknown = await api.post("/rest/v1/directors", json={"id": 905, "nope": 1}, headers=headers)
    assert unknown.status == 400 and (await unknown.json())["code"] == "PGRST204"
    missing = await api.post("/rest/v1/directors", json={"id": 906}, headers=headers)
    assert missing.status == 400 and (await missing.json())["code"] == "23502"  # last_name not null
    for name in ("E1", "E2"):
        patched = await api.patch("/rest/v1/directors?id=eq.901", json={"last_name": name}, headers=headers)
        assert await patched.json() == [{"id": 901, "last_name": name}]
    for n in (903, 904):
        removed = await api.delete(f"/rest/v1/directors?id=eq.{n}", headers=headers)
        assert await removed.json() == [{"id": n, "last_name": f"D{n}"}]


async def test_one_write_shape_runs_under_each_callers_role(api: Client) -> None:
    for sub in (ALICE, BOB):
        made = await api.post(
            "/rest/v1/todos",
            json={"title": "same shape"},
            headers={**user(sub), "Prefer": "return=representation"},
        )
        assert made.status == 201
        assert [row["user_id"] for row in await made.json()] == [sub]
    anon = await api.post("/rest/v1/todos", json={"title": "same shape"}, headers=ANON)
    assert anon.status == 401 and (await anon.json())["code"] == "42501"
