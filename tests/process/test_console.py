"""`fluxbase init`, `psql`, `sql` and `mail` against a database of their own (DATABASE_URL)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import psycopg

from harness import FLUXBASE, JWT_SECRET


def run(dsn: str, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {"PATH": "/usr/bin:/bin", "HOME": "/tmp", "DATABASE_URL": dsn, "FLUXBASE_JWT_SECRET": JWT_SECRET}
    return subprocess.run(
        [FLUXBASE, *args], env=env, input=stdin, capture_output=True, text=True, timeout=120
    )


def test_init_loads_the_example_once_and_never_into_a_database_in_use(fresh_dsn: str) -> None:
    first = run(fresh_dsn, "init")
    assert first.returncode == 0, first.stderr
    assert "loaded the example" in first.stdout
    assert "already loaded" in run(fresh_dsn, "init").stdout
    with psycopg.connect(fresh_dsn) as conn:
        assert conn.execute("select task from todos").fetchall() == [("Sign up, then add todos of your own",)]
        assert conn.execute(
            "select relrowsecurity from pg_class where oid = 'todos'::regclass"
        ).fetchone() == (True,)
        enabled = conn.execute("select schema_name, table_name from realtime.enabled_tables()").fetchall()
        assert ("public", "todos") in enabled
        conn.execute("create table public.mine (id int)")
    refused = run(fresh_dsn, "init")
    assert refused.returncode == 1
    assert "public already has tables (mine, todos)" in refused.stderr


def test_init_if_new_leaves_an_external_database_alone(fresh_dsn: str) -> None:
    assert run(fresh_dsn, "init", "--if-new").returncode == 0
    with psycopg.connect(fresh_dsn) as conn:
        assert conn.execute("select to_regclass('public.todos')").fetchone() == (None,)


def test_psql_as_the_owner_and_as_an_api_caller(fresh_dsn: str) -> None:
    assert run(fresh_dsn, "init").returncode == 0
    owner = run(fresh_dsn, "psql", "-Atc", "select current_user, count(*) from todos")
    assert owner.returncode == 0, owner.stderr
    assert owner.stdout.strip() == "postgres|1"
    anon = run(fresh_dsn, "psql", "--role", "anon", "-Atc", "select current_user, count(*) from todos")
    assert anon.stdout.strip() == "anon|0"  # RLS: no policy for anon
    user = run(
        fresh_dsn, "psql", "--claims", '{"sub": "00000000-0000-0000-0000-000000000001"}',
        "-Atc", "select current_user, auth.uid(), auth.role()",
    )  # fmt: skip
    assert user.stdout.strip() == "authenticated|00000000-0000-0000-0000-000000000001|authenticated"
    bad = run(fresh_dsn, "psql", "--claims", "[1]", "-c", "select 1")
    assert bad.returncode == 2 and "--claims: must be a JSON object" in bad.stderr


def test_sql_applies_all_or_nothing(fresh_dsn: str, tmp_path: Path) -> None:
    good = tmp_path / "good.sql"
    good.write_text("create table public.a (id int);\ninsert into public.a values (1);\n")
    assert run(fresh_dsn, "sql", str(good)).returncode == 0
    failing = run(fresh_dsn, "sql", "-", stdin="insert into public.a values (2);\nselect nope;\n")
    assert failing.returncode == 1
    assert 'column "nope" does not exist' in failing.stderr
    with psycopg.connect(fresh_dsn) as conn:
        assert conn.execute("select id from public.a").fetchall() == [(1,)]  # the 2 was rolled back
    missing = run(fresh_dsn, "sql", str(tmp_path / "missing.sql"))
    assert missing.returncode == 2 and "no such file" in missing.stderr


def test_mail_shows_the_local_mailbox(fresh_dsn: str) -> None:
    assert run(fresh_dsn, "migrate").returncode == 0
    assert run(fresh_dsn, "mail").stdout.strip() == "the local mailbox is empty"
    with psycopg.connect(fresh_dsn) as conn:
        conn.execute(
            "select dev_mailbox.deliver('confirmation', 'ada@example.com', 'Confirm your signup', "
            "'Follow http://localhost:8080/auth/v1/verify?token=t1&type=signup now')"
        )
    shown = run(fresh_dsn, "mail", "--to", "ADA@example.com")
    assert "to ada@example.com" in shown.stdout and "Subject: Confirm your signup" in shown.stdout
    link = run(fresh_dsn, "mail", "--link")
    assert link.stdout.strip() == "http://localhost:8080/auth/v1/verify?token=t1&type=signup"
    assert run(fresh_dsn, "mail", "--to", "bob@example.com", "--link").returncode == 1
