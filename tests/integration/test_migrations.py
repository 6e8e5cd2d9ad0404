"""Migrations: idempotent runs, sqitch and yoyo give one schema, revert empties the database."""

from __future__ import annotations

import re
import shutil
import subprocess
from urllib.parse import parse_qs, urlsplit

import psycopg
import pytest

from fluxbase.db.embedded import find_pg_bin
from fluxbase.db.migrate import REGISTRY_SCHEMA, Migrator, read_plan
from harness import AUTHENTICATOR_PASSWORD, ROOT, PostgresServer

# What each tool keeps about itself; everything else must be identical.
REGISTRIES = (REGISTRY_SCHEMA, "sqitch")
# Every change of the plan, in order.
PLAN = [change.name for change in read_plan()]


def libpq_args(dsn: str) -> list[str]:
    parts = urlsplit(dsn)
    query = parse_qs(parts.query)
    args = ["-d", parts.path.lstrip("/"), "-U", parts.username or "postgres"]
    if "host" in query:
        args += ["-h", query["host"][0]]
    elif parts.hostname:
        args += ["-h", parts.hostname]
    port = query.get("port", [str(parts.port or 5432)])[0]
    return [*args, "-p", port]


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


def sqitch(dsn: str, *args: str) -> subprocess.CompletedProcess[str]:
    parts = urlsplit(dsn)
    query = parse_qs(parts.query)
    host = query.get("host", [parts.hostname or "localhost"])[0]
    port = query.get("port", [str(parts.port or 5432)])[0]
    target = f"db:pg://{parts.username or 'postgres'}@/{parts.path.lstrip('/')}"
    env = {"PATH": f"{find_pg_bin()}:/usr/bin:/bin", "PGHOST": host, "PGPORT": port, "HOME": "/tmp"}
    env["SQITCH_FULLNAME"] = "Fluxbase Tests"
    env["SQITCH_EMAIL"] = "tests@fluxbase.dev"
    result = subprocess.run(
        ["sqitch", *args, target], cwd=ROOT / "migrations", env=env, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result


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
    by_yoyo = local_postgres.create_database("yoyo")
    try:
        sqitch(by_sqitch, "deploy", "--verify")
        apply_logic_with_psql(by_sqitch)
        Migrator(by_yoyo).up()
        sqitch_schema, yoyo_schema = schema_dump(by_sqitch), schema_dump(by_yoyo)
        assert "CREATE SCHEMA auth;" in yoyo_schema
        assert "CREATE FUNCTION auth.uid()" in yoyo_schema
        assert sqitch_schema == yoyo_schema
    finally:
        local_postgres.drop_database(by_sqitch)
        local_postgres.drop_database(by_yoyo)


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
        # Foundation's logic is every sql/ file but those built on later changes' tables.
        for path in sorted((ROOT / "sql").glob("*.sql")):
            if path.name not in ("20_auth.sql", "40_realtime.sql", "50_storage.sql"):
                apply_file_with_psql(foundation_only, path)
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
    assert not [t for t in tables if re.search("yoyo|sqitch", t)]
