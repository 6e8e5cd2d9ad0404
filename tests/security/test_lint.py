"""`fluxbase lint` (issue 10, item 3): finds each planted problem, nothing in a clean database,
and every fix it prints is SQL that removes its finding."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator

import asyncpg
import psycopg
import pytest

from fluxbase.advisor.report import lint
from fluxbase.db.migrate import Migrator
from harness import AUTHENTICATOR_PASSWORD, FLUXBASE, JWT_SECRET, PostgresServer

PLANTED = """
create table public.open_notes (id int primary key, body text);
grant select, insert on public.open_notes to anon;

create table public.ruled (id int);
create policy ruled_read on public.ruled for select using (true);

create table public.locked (id int);
alter table public.locked enable row level security;
grant truncate on public.locked to authenticated;

create table public.private_notes (id int, user_id uuid);
alter table public.private_notes enable row level security;
create policy own on public.private_notes for select using ((select auth.uid()) = user_id);
create view public.all_notes as select * from public.private_notes;
grant select on public.all_notes to authenticated;

create view public.members as select id, email from auth.users;
grant select on public.members to anon;

create function public.make_admin() returns void language sql security definer as 'select';

create table public.docs (id int, owner uuid);
alter table public.docs enable row level security;
create policy docs_admin on public.docs for select to authenticated
  using ((auth.jwt() -> 'user_metadata' ->> 'role') = 'admin');

create extension citext with schema public;
"""

EXPECTED = {
    ("rls_disabled_in_api", "error", "public.open_notes"),
    ("anon_write_grant", "warn", "public.open_notes"),
    ("policy_exists_rls_disabled", "error", "public.ruled"),
    ("rls_enabled_no_policy", "info", "public.locked"),
    ("api_role_truncate_grant", "error", "public.locked"),
    ("security_definer_view", "error", "public.all_notes"),
    ("auth_users_exposed", "error", "public.members"),
    ("security_definer_view", "error", "public.members"),
    ("security_definer_function_executable", "warn", "make_admin()"),
    ("rls_references_user_metadata", "error", "docs_admin on public.docs"),
    ("extension_in_public", "warn", "citext"),
}


@pytest.fixture
def database(postgres: PostgresServer) -> Iterator[str]:
    dsn = postgres.create_database("lint")
    Migrator(dsn, authenticator_password=AUTHENTICATOR_PASSWORD).up()
    yield dsn
    postgres.drop_database(dsn)


def plant(dsn: str, sql: str) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(sql)  # type: ignore[arg-type]


async def findings(dsn: str) -> set[tuple[str, str, str]]:
    connection = await asyncpg.connect(dsn)
    try:
        report = await lint(connection, ["public"])
    finally:
        await connection.close()
    return {(f.check, f.level, f.object.removeprefix("public.") if f.object_type == "function" else f.object)
            for f in report.findings}  # fmt: skip


async def test_a_clean_migrated_database_has_no_findings(database: str) -> None:
    assert await findings(database) == set()


async def test_each_planted_problem_is_found(database: str) -> None:
    plant(database, PLANTED)
    assert await findings(database) == EXPECTED


async def test_every_printed_fix_removes_its_finding(database: str) -> None:
    plant(database, PLANTED)
    connection = await asyncpg.connect(database)
    try:
        report = await lint(connection, ["public"])
        for finding in report.findings:
            if finding.level != "info":  # info fixes are templates to adapt (a policy's condition)
                await connection.execute(finding.fix)
        after = await lint(connection, ["public"])
    finally:
        await connection.close()
    assert [f for f in after.findings if f.level != "info"] == []


def run_cli(dsn: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {"PATH": "/usr/bin:/bin", "DATABASE_URL": dsn, "FLUXBASE_JWT_SECRET": JWT_SECRET}
    return subprocess.run([FLUXBASE, "lint", *args], env=env, capture_output=True, text=True, timeout=60)


@pytest.mark.process
def test_the_command_prints_text_and_json_and_fails_ci_on_errors(database: str) -> None:
    clean = run_cli(database)
    assert clean.returncode == 0, clean.stderr
    assert "no problems found" in clean.stdout

    plant(database, PLANTED)
    text = run_cli(database)
    assert text.returncode == 1
    assert "ERROR  rls_disabled_in_api  table public.open_notes" in text.stdout
    assert "fix: alter table public.open_notes enable row level security;" in text.stdout
    assert "why:" in text.stdout

    as_json = run_cli(database, "--json")
    assert as_json.returncode == 1
    report = json.loads(as_json.stdout)
    assert report["schemas"] == ["public"]
    assert report["summary"] == {"error": 7, "warn": 3, "info": 1}
    first = report["findings"][0]
    assert set(first) == {"check", "level", "title", "object_type", "object", "detail", "why", "fix"}

    assert run_cli(database, "--fail-on", "never").returncode == 0
    # Another exposed schema: none of public's problems are its business (extensions aside).
    other = run_cli(database, "--schema", "api", "--json")
    assert {f["check"] for f in json.loads(other.stdout)["findings"]} <= {"extension_in_public"}
