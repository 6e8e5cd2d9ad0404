"""Migrations: idempotent runs, sqitch and fluxbase migrate give one schema and share one registry."""

from __future__ import annotations

import re
import shutil
import subprocess

import psycopg
import pytest

from fluxbase.db.embedded import find_pg_bin
from fluxbase.db.migrate import REGISTRY_SCHEMA, Migrator, read_plan
from harness import AUTHENTICATOR_PASSWORD, ROOT, PostgresServer
from sqitch_support import libpq_args, sqitch

# The registry both tools share; everything else must be identical.
REGISTRIES = (REGISTRY_SCHEMA,)
# Every change of the plan, in order.
PLAN = [change.name for change in read_plan().changes]


def schema_dump(dsn: str) -> str:
    pg_dump = find_pg_bin() / "pg_dump"
    excluded = [arg for schema in REGISTRIES for arg in ("--exclude-schema", schema)]
    result = subprocess.run(
        [str(pg_dump), "--schema-only", "--no-owner", *excluded, *libpq_args(dsn)],
        check=True,
        capture_output=True,
        text=True,
    )
    # pg_dump writes a random \restrict key into every dump since 15.14.
    lines = [
        line for line in result.stdout.splitlines() if not line.startswith(("\\restrict", "\\unrestrict"))
    ]
    return "\n".join(lines)


def apply_logic_with_psql(dsn: str) -> None:
    """What a DBA runs after `sqitch deploy`: the idempotent sql/ files, in order."""
    psql = find_pg_bin() / "psql"
    for path in sorted((ROOT / "sql").glob("*.sql")):
        subprocess.run(
            [str(psql), "-v", "ON_ERROR_STOP=1", "-q", "-f", str(path), *libpq_args(dsn)],
            check=True,
            capture_output=True,
        )


def test_migrate_twice_changes_nothing_the_second_time(
    local_postgres: PostgresServer, fresh_dsn: str
) -> None:
    migrator = Migrator(fresh_dsn, authenticator_password=AUTHENTICATOR_PASSWORD)
    assert migrator.up() == PLAN
    before = schema_dump(fresh_dsn)
    assert migrator.up() == []
    assert schema_dump(fresh_dsn) == before
    assert all(change.applied for change in migrator.status())


def test_status_before_and_after(fresh_dsn: str) -> None:
    migrator = Migrator(fresh_dsn)
    assert [(c.name, c.applied) for c in migrator.status()] == [(name, False) for name in PLAN]
    migrator.up()
    assert [(c.name, c.applied) for c in migrator.status()] == [(name, True) for name in PLAN]


@pytest.mark.skipif(not shutil.which("sqitch"), reason="sqitch is installed by `make test`")
def test_sqitch_and_fluxbase_migrate_give_the_same_schema(local_postgres: PostgresServer) -> None:
    by_sqitch = local_postgres.create_database("sqitch")
    by_fluxbase = local_postgres.create_database("yoyo")
    try:
        sqitch(by_sqitch, "deploy", "--verify")
        apply_logic_with_psql(by_sqitch)
        Migrator(by_fluxbase).up()
        sqitch_schema, fluxbase_schema = schema_dump(by_sqitch), schema_dump(by_fluxbase)
        assert "CREATE SCHEMA auth;" in fluxbase_schema
        assert "CREATE FUNCTION auth.uid()" in fluxbase_schema
        assert sqitch_schema == fluxbase_schema
    finally:
        local_postgres.drop_database(by_sqitch)
        local_postgres.drop_database(by_fluxbase)


@pytest.mark.skipif(not shutil.which("sqitch"), reason="sqitch is installed by `make test`")
def test_sqitch_revert_brings_the_database_back_to_empty(local_postgres: PostgresServer) -> None:
    target = local_postgres.create_database("revert")
    empty = local_postgres.create_database("empty")
    try:
        sqitch(target, "deploy")
        apply_logic_with_psql(target)
        sqitch(target, "revert", "-y")
        assert schema_dump(target) == schema_dump(empty)
    finally:
        local_postgres.drop_database(target)
        local_postgres.drop_database(empty)


def apply_file_with_psql(dsn: str, path: object) -> None:
    psql = find_pg_bin() / "psql"
    subprocess.run(
        [str(psql), "-v", "ON_ERROR_STOP=1", "-q", "-f", str(path), *libpq_args(dsn)],
        check=True,
        capture_output=True,
    )


@pytest.mark.skipif(not shutil.which("sqitch"), reason="sqitch is installed by `make test`")
def test_reverting_auth_schema_gives_what_foundation_alone_gives(local_postgres: PostgresServer) -> None:
    """Reverting a change removes its tables and the sql/ functions built on them, nothing else."""
    reverted = local_postgres.create_database("reverted")
    foundation_only = local_postgres.create_database("foundation")
    try:
        sqitch(reverted, "deploy")
        apply_logic_with_psql(reverted)
        sqitch(reverted, "revert", "-y", "--to", "foundation")
        sqitch(foundation_only, "deploy", "--to", "foundation")
        # Foundation's logic: the sql/ files that are not built on later changes' tables.
        for name in ("10_grants.sql", "20_auth_claims.sql", "30_schema_reload.sql"):
            apply_file_with_psql(foundation_only, ROOT / "sql" / name)
        dump = schema_dump(reverted)
        assert "auth.users" not in dump and "audit.events" not in dump
        assert "realtime.log" not in dump
        assert "storage.objects" not in dump and "storage.foldername" not in dump
        assert "CREATE FUNCTION auth.uid()" in dump
        assert dump == schema_dump(foundation_only)
    finally:
        local_postgres.drop_database(reverted)
        local_postgres.drop_database(foundation_only)


def test_migrate_down_one_then_up_again(fresh_dsn: str) -> None:
    migrator = Migrator(fresh_dsn)
    migrator.up()
    before = schema_dump(fresh_dsn)
    assert migrator.down(1) == PLAN[-1:]
    assert migrator.up() == PLAN[-1:]
    assert schema_dump(fresh_dsn) == before


def test_migrate_down_all_brings_the_database_back_to_empty(
    local_postgres: PostgresServer, fresh_dsn: str
) -> None:
    empty = local_postgres.create_database("empty")
    try:
        migrator = Migrator(fresh_dsn)
        migrator.up()
        assert migrator.down(None) == PLAN[::-1]
        assert schema_dump(fresh_dsn) == schema_dump(empty)
        # And forward again: a reverted database migrates like a new one.
        assert migrator.up() == PLAN
    finally:
        local_postgres.drop_database(empty)


def test_roles_are_what_the_architecture_says(migrated_dsn: str) -> None:
    with psycopg.connect(migrated_dsn) as conn:
        rows = dict(
            (name, (login, bypass, inherit, superuser))
            for name, login, bypass, inherit, superuser in conn.execute(
                "select rolname, rolcanlogin, rolbypassrls, rolinherit, rolsuper from pg_roles "
                "where rolname in ('anon', 'authenticated', 'service_role', 'authenticator')"
            )
        )
        assert rows == {
            "anon": (False, False, False, False),
            "authenticated": (False, False, False, False),
            "service_role": (False, True, False, False),
            "authenticator": (True, False, False, False),
        }
        owned = conn.execute(
            "select count(*) from pg_class c join pg_roles r on r.oid = c.relowner "
            "where r.rolname = 'authenticator'"
        ).fetchone()
        assert owned == (0,)


def test_concurrent_migrations_take_turns(local_postgres: PostgresServer, fresh_dsn: str) -> None:
    """Several replicas starting at once: one applies, the others find nothing to do."""
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda _: Migrator(fresh_dsn).up(), range(4)))
    assert sorted(results, key=len) == [[], [], [], PLAN]


def test_migration_registry_is_not_in_an_exposed_schema(migrated_dsn: str) -> None:
    with psycopg.connect(migrated_dsn) as conn:
        tables = [
            row[0] for row in conn.execute("select tablename from pg_tables where schemaname = 'public'")
        ]
    assert not [t for t in tables if re.search("yoyo|sqitch|changes|events", t)]


def registry(dsn: str) -> list[tuple[str, str, str | None]]:
    """What sqitch's registry says is deployed: (change id, name, script hash)."""
    with psycopg.connect(dsn) as conn:
        rows = conn.execute(
            "select change_id, change, script_hash from sqitch.changes order by committed_at"
        ).fetchall()
    return [(r[0], r[1], r[2]) for r in rows]


@pytest.mark.skipif(not shutil.which("sqitch"), reason="sqitch is installed by `make test`")
def test_sqitch_sees_what_fluxbase_migrate_deployed(local_postgres: PostgresServer, fresh_dsn: str) -> None:
    Migrator(fresh_dsn).up()
    status = sqitch(fresh_dsn, "status").stdout
    assert "Nothing to deploy (up-to-date)" in status, status
    assert "Nothing to deploy" in sqitch(fresh_dsn, "deploy").stdout
    assert sqitch(fresh_dsn, "verify").returncode == 0
    # sqitch can take it back down as well: it reads the dependencies we recorded.
    sqitch(fresh_dsn, "revert", "-y", "--to", PLAN[-3])
    assert [c.name for c in Migrator(fresh_dsn).status() if not c.applied] == PLAN[-2:]
    assert Migrator(fresh_dsn).up() == PLAN[-2:]
    assert "Nothing to deploy (up-to-date)" in sqitch(fresh_dsn, "status").stdout


@pytest.mark.skipif(not shutil.which("sqitch"), reason="sqitch is installed by `make test`")
def test_fluxbase_migrate_sees_what_sqitch_deployed(local_postgres: PostgresServer, fresh_dsn: str) -> None:
    sqitch(fresh_dsn, "deploy", "--to", "auth_schema")
    assert [c.applied for c in Migrator(fresh_dsn).status()] == [c == PLAN[0] or c == PLAN[1] for c in PLAN]
    deployed_by_sqitch = registry(fresh_dsn)
    assert Migrator(fresh_dsn).up() == PLAN[2:]
    assert registry(fresh_dsn)[:2] == deployed_by_sqitch
    assert [name for _, name, _ in registry(fresh_dsn)] == PLAN
    assert "Nothing to deploy (up-to-date)" in sqitch(fresh_dsn, "status").stdout
    assert Migrator(fresh_dsn).down(None) == PLAN[::-1]
    assert "No changes deployed" in sqitch(fresh_dsn, "status", expect=1).stdout


def test_a_database_migrated_by_an_earlier_version_is_adopted(fresh_dsn: str) -> None:
    """Earlier versions kept their registry in fluxbase_migrations (yoyo's table): it moves to sqitch's."""
    Migrator(fresh_dsn).up()
    with psycopg.connect(fresh_dsn, autocommit=True) as conn:
        conn.execute("drop schema sqitch cascade")
        conn.execute("create schema fluxbase_migrations")
        conn.execute("create table fluxbase_migrations._yoyo_migration (migration_id text primary key)")
        conn.execute("insert into fluxbase_migrations._yoyo_migration select unnest(%s::text[])", (PLAN,))
    assert Migrator(fresh_dsn).up() == []
    assert [name for _, name, _ in registry(fresh_dsn)] == PLAN
    with psycopg.connect(fresh_dsn) as conn:
        assert conn.execute("select to_regnamespace('fluxbase_migrations')").fetchone() == (None,)
