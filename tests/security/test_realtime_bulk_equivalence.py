"""realtime.visible_changes' bulk path decides exactly what the per-group path decides.

The bulk path evaluates a role's policies for every subscriber group in one statement, the
claims joined in as a relation (sql/40_realtime.sql, realtime.claims_policy). Security first:
random policies (permissive and restrictive, for `authenticated`, `anon` or everyone, over the
claim helpers, raw `request.jwt.claims`, subqueries, and shapes the bulk path must refuse:
functions reading the claims themselves, tables with RLS of their own, string literals that look
like helper calls), random claims (missing, empty, malformed `sub`) and random rows, some since
deleted or changed; every trial compares both paths, group by group. A difference is a leak or a
lost delivery, and fails.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

from fluxbase.db.migrate import Migrator
from fluxbase.db.pool import authenticator_dsn
from harness import AUTHENTICATOR_PASSWORD, PostgresServer

TRIALS = 300
SEED = 18
USERS = [f"00000000-0000-0000-0000-00000000000{i}" for i in range(1, 6)]
TEAMS = ["red", "blue", "green"]

SCHEMA = """
create table public.eq_rows (
  id integer primary key,
  owner uuid,
  team text,
  n integer,
  body text,
  flag boolean
);
alter table public.eq_rows enable row level security;
grant select on public.eq_rows to anon, authenticated, service_role;
select realtime.enable('public.eq_rows');

-- Membership without RLS of its own: a subquery the bulk path can prove.
create table public.eq_members (user_id uuid, team text);
grant select on public.eq_members to anon, authenticated;
insert into public.eq_members values
  ('00000000-0000-0000-0000-000000000001', 'red'),
  ('00000000-0000-0000-0000-000000000002', 'blue'),
  ('00000000-0000-0000-0000-000000000003', 'red');

-- The same with RLS: its policies read the claims, so the bulk path must refuse it.
create table public.eq_guarded (user_id uuid, team text);
alter table public.eq_guarded enable row level security;
create policy eq_guarded_own on public.eq_guarded for select using (user_id = auth.uid());
grant select on public.eq_guarded to anon, authenticated;
insert into public.eq_guarded select * from public.eq_members;

-- A function that reads the claims itself: only the per-group path can evaluate it.
create function public.eq_my_team() returns text language sql stable
  as $$ select current_setting('request.jwt.claims', true)::jsonb ->> 'team' $$;
grant execute on function public.eq_my_team() to anon, authenticated;
"""

# Policy expressions over eq_rows; %s-free, written as a user would.
EXPRESSIONS = [
    "owner = auth.uid()",
    "auth.uid() is not null",
    "auth.uid() is null",
    "team = (auth.jwt() ->> 'team')",
    "auth.role() = 'authenticated'",
    "auth.role() is distinct from 'authenticated'",
    "n < coalesce((auth.jwt() ->> 'level')::integer, 0)",
    "body like 'a%'",
    "flag",
    "owner = auth.uid() or flag",
    "auth.email() = body",
    "(current_setting('request.jwt.claims', true)::jsonb ->> 'team') = team",
    "team in (select m.team from public.eq_members m where m.user_id = auth.uid())",
    "exists (select 1 from public.eq_guarded g where g.team = eq_rows.team)",
    "team = public.eq_my_team()",
    "body = 'auth.uid()'",
    "(auth.jwt() -> 'teams') ? team",
    "true",
    "false",
    "n % 2 = 0 and auth.uid() is not null",
]


@pytest.fixture(scope="module")
def equivalence_dsn(postgres: PostgresServer) -> Iterator[str]:
    dsn = postgres.create_database("rt_equiv", icu_locale="en-US")
    Migrator(dsn, authenticator_password=AUTHENTICATOR_PASSWORD).up()
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(SCHEMA)  # type: ignore[arg-type]
    yield dsn


def random_claims(rng: random.Random, role: str) -> dict[str, Any]:
    claims: dict[str, Any] = {"role": role}
    pick = rng.random()
    if pick < 0.7:
        claims["sub"] = rng.choice(USERS)
    elif pick < 0.8:
        claims["sub"] = ""
    elif pick < 0.85:
        claims["sub"] = "not-a-uuid"
    if rng.random() < 0.6:
        claims["team"] = rng.choice(TEAMS)
    if rng.random() < 0.4:
        claims["teams"] = rng.sample(TEAMS, rng.randint(0, 2))
    if rng.random() < 0.5:
        claims["level"] = rng.randint(0, 5)
    if rng.random() < 0.3:
        claims["email"] = rng.choice(["a1", "b2", "a3"])
    return claims


def random_row(rng: random.Random, row_id: int) -> dict[str, Any]:
    return {
        "id": row_id,
        "owner": rng.choice([*USERS, None]),
        "team": rng.choice([*TEAMS, None]),
        "n": rng.randint(0, 6),
        "body": rng.choice(["a1", "b2", "a3", "auth.uid()", None]),
        "flag": rng.choice([True, False, None]),
    }


def setup_trial(owner: psycopg.Connection[Any], rng: random.Random) -> tuple[list[dict[str, Any]], int]:
    """New policies and live rows; returns the logged changes and how many policies were made."""
    for (drop,) in owner.execute(
        "select format('drop policy %I on public.eq_rows', polname) from pg_policy"
        " where polrelid = 'public.eq_rows'::regclass"
    ).fetchall():
        owner.execute(drop)
    count = rng.randint(1, 3)
    for number in range(count):
        kind = "restrictive" if number and rng.random() < 0.3 else "permissive"
        to = rng.choice(["authenticated", "anon", "public", "authenticated, anon"])
        expression = rng.choice(EXPRESSIONS)
        owner.execute(
            f"create policy eq_p{number} on public.eq_rows as {kind} for select to {to} using ({expression})"
        )
    owner.execute("delete from public.eq_rows")
    changes = []
    for row_id in range(1, rng.randint(3, 12)):
        logged = random_row(rng, row_id)
        kind = rng.choice(["INSERT", "UPDATE", "DELETE"])
        changes.append({"t": kind, "r": logged})
        fate = rng.random()
        if kind != "DELETE" and fate < 0.7:
            live = logged if fate < 0.5 else random_row(rng, row_id)
            owner.execute(
                "insert into public.eq_rows values (%(id)s, %(owner)s, %(team)s, %(n)s, %(body)s, %(flag)s)",
                live,
            )
    return changes, count


# Filter 1 matches every row, filter 2 some; a group binds one or two of them.
FILTERS = [{"c": []}, {"c": [{"col": "n", "op": "lt", "not": False, "v": "3"}]}]


def random_bindings(rng: random.Random) -> list[dict[str, Any]]:
    return [
        {"f": rng.choice([1, 1, 2]), "e": rng.choice(["*", "*", "INSERT", "UPDATE", "DELETE"])}
        for _ in range(rng.choice([1, 1, 1, 2]))
    ]


def decide(
    server: psycopg.Connection[Any],
    changes: list[dict[str, Any]],
    groups: list[dict[str, Any]],
    *,
    bulk: bool,
) -> set[tuple[int, int | None, int | None]]:
    with server.transaction():
        server.execute("select set_config('fluxbase.realtime_bulk', %s, true)", ("on" if bulk else "off",))
        rows = server.execute(
            "select group_index, change_index, binding_index, columns is null"
            " from realtime.visible_changes('public.eq_rows', %s::jsonb, %s::jsonb, %s::jsonb)",
            (json.dumps(changes), json.dumps(FILTERS), json.dumps(groups)),
        ).fetchall()
    # Every row once: a pair answered twice would be a message delivered twice.
    assert len(rows) == len(set(rows)), rows
    # (group, None, None) heads a group that may see something; columns null marks a failure.
    return {(g, c, -1 if failed else b) if c is None else (g, c, b) for g, c, b, failed in rows}


def every_pair(changes: list[dict[str, Any]], group: dict[str, Any]) -> set[tuple[int | None, int | None]]:
    """What a role that bypasses RLS is answered: each (change, binding) whose event and filter fit."""
    pairs: set[tuple[int | None, int | None]] = set()
    for c, change in enumerate(changes, 1):
        for b, binding in enumerate(group["b"], 1):
            fits = FILTERS[binding["f"] - 1]["c"] == [] or (
                change["r"]["n"] is not None and change["r"]["n"] < 3
            )
            if binding["e"] in ("*", change["t"]) and fits:
                pairs.add((c, b))
    return pairs | {(None, None)} if pairs else pairs


def test_the_bulk_path_decides_as_the_per_group_path(equivalence_dsn: str) -> None:
    rng = random.Random(SEED)
    bulk_trials = 0
    with (
        psycopg.connect(equivalence_dsn, autocommit=True) as owner,
        psycopg.connect(
            authenticator_dsn(equivalence_dsn, AUTHENTICATOR_PASSWORD), autocommit=True
        ) as server,
    ):
        for trial in range(TRIALS):
            changes, _ = setup_trial(owner, rng)
            groups = []
            for _ in range(rng.randint(1, 8)):
                role = rng.choice(["authenticated", "authenticated", "anon", "service_role"])
                groups.append({"role": role, "claims": random_claims(rng, role), "b": random_bindings(rng)})
            roles = {group["role"] for group in groups}
            provable = any(
                owner.execute(
                    "select realtime.claims_policy('public.eq_rows', %s) is not null", (role,)
                ).fetchone()[0]  # type: ignore[index]
                for role in roles
            )
            bulk_trials += provable
            per_group = decide(server, changes, groups, bulk=False)
            bulk = decide(server, changes, groups, bulk=True)
            policies = owner.execute(
                "select polname, polpermissive, polroles::regrole[]::text, pg_get_expr(polqual, polrelid)"
                " from pg_policy where polrelid = 'public.eq_rows'::regclass"
            ).fetchall()
            assert bulk == per_group, (
                f"trial {trial}: bulk path differs\n policies: {policies}\n groups: {groups}\n"
                f" changes: {changes}\n only bulk: {sorted(bulk - per_group)}\n"
                f" only per-group: {sorted(per_group - bulk)}"
            )
            # service_role bypasses RLS: every pair its event and filter fit, whatever the policies.
            for number, group in enumerate(groups, 1):
                if group["role"] == "service_role":
                    answered = {(c, b) for g, c, b in bulk if g == number}
                    assert answered == every_pair(changes, group), (trial, group, changes)
    # The comparison means something only if the bulk path actually ran, often.
    assert bulk_trials > TRIALS // 3, bulk_trials


def test_claims_policy_refuses_what_it_cannot_prove(equivalence_dsn: str) -> None:
    refused = [
        "team = public.eq_my_team()",
        "exists (select 1 from public.eq_guarded g where g.team = eq_rows.team)",
        "body = 'auth.uid()' and owner = auth.uid()",
        "current_setting('request.jwt.claim.sub', true) = owner::text",
        "random() < 2",
        "exists (select 1 from pg_catalog.pg_settings s"
        " where s.name = 'request.jwt.claims' and s.setting like '%red%')",
        "query_to_xml('select 1', true, false, '') is not null",
    ]
    accepted = [
        "owner = auth.uid()",
        "team in (select m.team from public.eq_members m where m.user_id = auth.uid())",
        "(current_setting('request.jwt.claims', true)::jsonb ->> 'team') = team",
    ]
    with psycopg.connect(equivalence_dsn) as owner:
        for expression, expected in [(e, False) for e in refused] + [(e, True) for e in accepted]:
            with owner.transaction(force_rollback=True):
                for (polname,) in owner.execute(
                    "select polname from pg_policy where polrelid = 'public.eq_rows'::regclass"
                ).fetchall():
                    owner.execute(f'drop policy "{polname}" on public.eq_rows')
                owner.execute(f"create policy eq_only on public.eq_rows for select using ({expression})")
                row = owner.execute(
                    "select realtime.claims_policy('public.eq_rows', 'authenticated')"
                ).fetchone()
                assert row is not None
                assert (row[0] is not None) == expected, (expression, row[0])
                if expected:
                    assert "auth." not in row[0] and "current_setting" not in row[0], row[0]
