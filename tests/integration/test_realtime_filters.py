"""A postgres_changes filter and the same filter on /rest/v1 select the same rows.

The database uses a real collation (ICU en-US: 'b' < 'B' < 'é' < 'f', where the C locale says
'B' < 'b' < 'f' < 'é'), so text comparisons are exercised as in a deployment. One channel holds
a binding per filter; rows are written once; the rows each binding received must be exactly the
rows /rest/v1 answers for that filter, for every operator the two share, text and non-text.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import psycopg
import pytest

from fluxbase.db.migrate import Migrator
from harness import AUTHENTICATOR_PASSWORD, PostgresServer
from realtime_support import ANON_KEY, Served, open_socket, serve

SCHEMA = """
create type public.mood as enum ('sad', 'ok', 'happy');
create table public.things (
  id integer primary key,
  word text,
  code varchar(10),
  c_word text collate "C",
  n integer,
  price numeric,
  done boolean,
  at timestamptz,
  day date,
  uid uuid,
  doc jsonb,
  mood public.mood
);
grant select on public.things to anon;
select realtime.enable('public.things');
"""


def uid(tail: str) -> str:
    return "00000000-0000-0000-0000-0000000000" + tail


# (id, word: text, code: varchar, c_word: text collate "C", n, price, done, at, day, uid, doc, mood)
ROWS = [
    (1, "b", 1, "1.50", True, "2026-01-01T00:00:00Z", "2026-01-01", uid("0a"), '{"a": 1}', "sad"),
    (2, "B", 5, "10", False, "2026-01-01T12:00:00Z", "2026-01-02", uid("0b"), '{"a": 2}', "ok"),
    (3, "é", 9, "10.00", None, "2026-01-02T00:00:00Z", "2025-12-31", uid("0c"), '{"b": [1]}', "happy"),
    (4, "f", None, None, True, None, None, None, None, None),
    (5, "a", 5, "0.5", False, "2025-06-01T00:00:00+02:00", "2026-03-01", "ffff" + uid("00")[4:], "[1]", "ok"),
    (6, "Z", -3, "100", True, "2026-02-01T00:00:00Z", "2026-01-01", uid("0a"), '{"a":1}', "happy"),
    (7, None, 7, "7", None, "2026-01-01T00:00:00Z", "2026-01-05", uid("0b"), None, "sad"),
    (8, "apple", 0, "-1", True, "2024-01-01T00:00:00Z", "2024-01-01", uid("0d"), '"x"', "ok"),
    (9, "Apple", 12, "12.5", False, "2026-01-01T00:00:00Z", "2026-01-01", uid("0e"), "{}", "happy"),
    (10, "ábc", 5, "5", True, "2026-01-01T00:00:01Z", "2026-01-01", uid("0a"), '{"a": 1}', "sad"),
]

# (column, operator.value): each is subscribed to and asked of /rest/v1 as `column=operator.value`.
FILTERS = [
    ("word", "eq.b"),
    ("word", "neq.b"),
    ("word", "lt.f"),
    ("word", "lte.B"),
    ("word", "gt.b"),
    ("word", "gte.B"),
    ("word", "in.(b,é,Z)"),
    ("word", "not.in.(a,b)"),
    ("word", "is.null"),
    ("word", "not.is.null"),
    ("word", "like.*b*"),
    ("word", "ilike.A*"),
    ("word", "not.like.a*"),
    ("word", "not.lt.f"),
    ("word", "isdistinct.b"),
    ("code", "lt.apple"),
    ("code", "gt.Z"),
    ("c_word", "lt.f"),
    ("c_word", "gt.b"),
    ("n", "eq.5"),
    ("n", "neq.5"),
    ("n", "lt.5"),
    ("n", "lte.5"),
    ("n", "gt.5"),
    ("n", "gte.5"),
    ("n", "in.(1,5,9)"),
    ("n", "not.gt.5"),
    ("n", "is.null"),
    ("n", "isdistinct.5"),
    ("price", "gt.1.5"),
    ("price", "eq.10"),
    ("price", "lte.10"),
    ("done", "is.true"),
    ("done", "is.false"),
    ("done", "eq.false"),
    ("done", "not.is.true"),
    ("at", "lt.2026-01-01T06:00:00Z"),
    ("at", "gte.2026-01-01"),
    ("at", "eq.2026-01-01T01:00:00+01:00"),
    ("day", "gt.2026-01-01"),
    ("day", "lte.2025-12-31"),
    ("uid", "eq.00000000-0000-0000-0000-00000000000A"),
    ("uid", "lt.00000000-0000-0000-0000-00000000000c"),
    ("doc", 'eq.{"a":1}'),
    ("doc", "neq.{}"),
    ("mood", "gt.sad"),
    ("mood", "in.(ok,happy)"),
    ("mood", "lt.happy"),
]


@pytest.fixture(scope="module")
def icu_dsn(postgres: PostgresServer) -> str:
    dsn = postgres.create_database("rtfilter", icu_locale="en-US")
    Migrator(dsn, authenticator_password=AUTHENTICATOR_PASSWORD).up()
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(SCHEMA)  # type: ignore[arg-type]
    return dsn


@pytest.fixture
async def icu_served(icu_dsn: str) -> AsyncIterator[Served]:
    async for item in serve(icu_dsn):
        yield item


async def test_the_database_really_has_a_locale(icu_served: Served) -> None:
    with psycopg.connect(icu_served.dsn) as conn:
        ordered = conn.execute(
            "select array_agg(w order by w) from unnest(array['f','é','B','b']) w"
        ).fetchone()
    assert ordered == (["b", "B", "é", "f"],)


async def test_realtime_and_rest_agree_on_every_filter(icu_served: Served) -> None:
    bindings = [
        {"event": "INSERT", "schema": "public", "table": "things", "filter": f"{column}={value}"}
        for column, value in FILTERS
    ]
    async with aiohttp.ClientSession() as session:
        socket = await open_socket(session, icu_served.ws_url())
        reply = await socket.join("realtime:filters", {"postgres_changes": bindings})
        assert reply["status"] == "ok", reply
        binding_ids = [binding["id"] for binding in reply["response"]["postgres_changes"]]
        with psycopg.connect(icu_served.dsn, autocommit=True) as conn, conn.cursor() as cursor:
            cursor.executemany(
                "insert into public.things values (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
                [(row[0], row[1], row[1], row[1], *row[2:]) for row in ROWS],
            )

        expected: dict[int, set[int]] = {}
        for (column, value), binding_id in zip(FILTERS, binding_ids, strict=True):
            async with session.get(
                f"{icu_served.http_url}/rest/v1/things",
                params={"select": "id", column: value},
                headers={"apikey": ANON_KEY},
            ) as response:
                assert response.status == 200, (column, value, await response.text())
                expected[binding_id] = {row["id"] for row in await response.json()}
        matching_rows = set().union(*expected.values())
        # Sanity: the collation-dependent filters must differ from what the C locale gives.
        assert (
            expected[binding_ids[FILTERS.index(("word", "lt.f"))]]
            != expected[binding_ids[FILTERS.index(("c_word", "lt.f"))]]
        )

        messages = await socket.changes(len(matching_rows))
        messages += await socket.quiet(wait=1.0)
        delivered: dict[int, set[int]] = {binding_id: set() for binding_id in binding_ids}
        for message in messages:
            payload = message.get("payload", message)
            row_id = payload["data"]["record"]["id"]
            for binding_id in payload["ids"]:
                delivered[binding_id].add(row_id)
        disagreements = {
            f"{column}={value}": {"rest": sorted(expected[b]), "realtime": sorted(delivered[b])}
            for (column, value), b in zip(FILTERS, binding_ids, strict=True)
            if expected[b] != delivered[b]
        }
        assert disagreements == {}
        await socket.close()


async def test_filters_postgresql_refuses_are_refused_at_join(icu_served: Served) -> None:
    async with aiohttp.ClientSession() as session:
        socket = await open_socket(session, icu_served.ws_url())
        for number, (text, reason) in enumerate(
            [
                ("n=gt.x", "invalid input syntax for type integer"),
                ("n=in.(1,x)", "invalid input syntax for type integer"),
                ("day=lt.yesterday-ish", "date"),
                ("done=is.true,n=is.true", "boolean"),
                ("word=like.abc\\", "escape"),
                ("nope=eq.1", "invalid column for filter nope"),
            ]
        ):
            binding = {"event": "*", "schema": "public", "table": "things", "filter": text}
            reply = await socket.join(f"realtime:bad{number}", {"postgres_changes": [binding]})
            assert reply["status"] == "error", text
            assert (
                "invalid filter" in reply["response"]["reason"] and reason in reply["response"]["reason"]
            ), (
                text,
                reply,
            )
        await socket.close()
