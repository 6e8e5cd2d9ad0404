"""The restore drill: deploy/scripts/backup.sh, then the database, a role, the storage folder and
the configuration are wiped, then deploy/scripts/restore.sh brings back every table's rows
(count and checksum), every file byte for byte, the policies, grants and roles."""

from __future__ import annotations

import hashlib
import os
import shutil
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from deploy_support import DEPLOY, tool

from fluxbase.db.migrate import Migrator
from harness import AUTHENTICATOR_PASSWORD, PostgresServer, free_port

SCRIPTS = DEPLOY / "scripts"

# ACLs are compared as what they grant: NULL (the owner's defaults) equals its spelled-out form,
# which pg_dump rightly does not repeat.
# Every relation's rows (count and an order-independent checksum), outside the catalogs.
TABLES_SQL = """
select format('%I.%I', n.nspname, c.relname)
from pg_class c join pg_namespace n on n.oid = c.relnamespace
where c.relkind in ('r', 'p') and n.nspname not in ('pg_catalog', 'information_schema')
  and n.nspname not like 'pg_toast%' and n.nspname not like 'pg_temp%'
order by 1
"""


def snapshot(dsn: str, role: str) -> dict[str, Any]:
    """What a restore must bring back, read from the catalogs and the tables themselves."""
    with psycopg.connect(dsn) as conn:
        tables = [row[0] for row in conn.execute(TABLES_SQL)]
        rows = {}
        for table in tables:
            count, digest = conn.execute(
                "select count(*), md5(coalesce(string_agg(t::text, '|' order by t::text), ''))"
                f" from {table} t"
            ).fetchone()  # type: ignore[misc]
            rows[table] = (count, digest)
        policies = conn.execute(
            "select schemaname, tablename, policyname, cmd, roles::text, qual, with_check"
            " from pg_policies order by 1, 2, 3"
        ).fetchall()
        grants = conn.execute(
            "select n.nspname, c.relname, coalesce(c.relacl, acldefault('r', c.relowner))::text,"
            " c.relowner::regrole::text, c.relrowsecurity, c.relforcerowsecurity"
            " from pg_class c join pg_namespace n on n.oid = c.relnamespace"
            " where n.nspname not in ('pg_catalog', 'information_schema') and c.relkind in ('r','v','m','p')"
            " order by 1, 2"
        ).fetchall()
        functions = conn.execute(
            "select p.oid::regprocedure::text, md5(pg_get_functiondef(p.oid)),"
            " coalesce(p.proacl, acldefault('f', p.proowner))::text"
            " from pg_proc p join pg_namespace n on n.oid = p.pronamespace"
            " where n.nspname not in ('pg_catalog', 'information_schema') and p.prokind in ('f', 'p')"
            " order by 1"
        ).fetchall()
        roles = conn.execute(
            "select rolname, rolcanlogin, rolinherit, rolbypassrls, rolcreaterole,"
            " array(select b.rolname from pg_auth_members m join pg_roles b on b.oid = m.roleid"
            "       where m.member = r.oid order by 1)::text"
            " from pg_roles r where rolname = %s",
            (role,),
        ).fetchall()
        schema_acl = conn.execute(
            "select nspname, coalesce(nspacl, acldefault('n', nspowner))::text from pg_namespace"
            " where nspname !~ '^pg_' order by 1"
        ).fetchall()
    return {
        "rows": rows,
        "policies": policies,
        "grants": grants,
        "functions": functions,
        "roles": roles,
        "schema_acl": schema_acl,
    }


def files_of(folder: Path) -> dict[str, str]:
    return {
        str(path.relative_to(folder)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    }


def run_script(name: str, *args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        ["bash", str(SCRIPTS / name), *args],
        env={"PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", "/root"), **env},
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert result.returncode == 0, f"{name} failed:\n{result.stdout}\n{result.stderr}"
    return result


@pytest.fixture
def application(local_postgres: PostgresServer, tmp_path: Path) -> Iterator[dict[str, Any]]:
    """A migrated Fluxbase database with users, todos, a custom role with grants and a policy,
    a storage folder and configuration files."""
    dsn = local_postgres.create_database("drill")
    Migrator(dsn, authenticator_password=AUTHENTICATOR_PASSWORD).up()
    role = f"drill_reporting_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(dsn, autocommit=True) as conn:
        starter = Path(__file__).parents[2] / "examples" / "db"
        conn.execute((starter / "deploy" / "todos.sql").read_text())
        conn.execute((starter / "seed.sql").read_text())
        users = [uuid.uuid4() for _ in range(25)]
        for n, user in enumerate(users):
            conn.execute(
                "insert into auth.users (id, email, raw_user_meta_data) values (%s, %s, %s)",
                (user, f"user{n}@example.com", '{"name": "drill ✓"}'),
            )
            conn.execute(
                "insert into public.todos (user_id, task, is_complete) select %s, 'task ' || g, g %% 2 = 0"
                " from generate_series(1, 40) g",
                (user,),
            )
        conn.execute(f'create role "{role}" nologin')
        conn.execute(f'grant authenticated to "{role}"')
        conn.execute(f'grant select on public.todos to "{role}"')
        conn.execute(
            f'create policy "reporting reads finished todos" on public.todos for select to "{role}"'
            " using (is_complete)"
        )
    storage = tmp_path / "storage"
    for n in range(12):
        path = storage / "avatars" / f"user{n}" / f"photo {n}.bin"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(os.urandom(1000 * (n + 1)))
    (storage / "docs").mkdir()
    (storage / "docs" / "empty.txt").write_bytes(b"")
    etc = tmp_path / "etc" / "fluxbase"
    etc.mkdir(parents=True)
    (etc / "fluxbase.yaml").write_text((DEPLOY / "fluxbase.yaml").read_text())
    (etc / "env").write_text(f"DATABASE_URL={dsn}\nFLUXBASE_JWT_SECRET=drill-secret\n")
    yield {"dsn": dsn, "role": role, "storage": storage, "etc": etc}
    local_postgres.drop_database(dsn)
    with psycopg.connect(local_postgres.admin_dsn, autocommit=True) as conn:
        conn.execute(f'drop role if exists "{role}"')


def test_backup_wipe_restore_brings_everything_back(
    application: dict[str, Any], local_postgres: PostgresServer, tmp_path: Path
) -> None:
    tool("pg_dump")
    dsn, role, storage, etc = (application[k] for k in ("dsn", "role", "storage", "etc"))
    before = snapshot(dsn, role)
    assert before["rows"]["public.todos"][0] == 25 * 40 + 1
    assert before["roles"] and any(role in str(p) for p in before["policies"])
    files_before = files_of(storage)
    config_before = files_of(etc)
    backups = tmp_path / "backups"
    # An old backup, past RETENTION_DAYS, is removed by the next run.
    (backups / "20000101_000000").mkdir(parents=True)
    env = {
        "DATABASE_URL": dsn,
        "BACKUP_DIR": str(backups),
        "RETENTION_DAYS": "30",
        "FLUXBASE_CONFIG_FILES": f"{etc / 'env'} {etc / 'fluxbase.yaml'}",
        "FLUXBASE_STORAGE_LOCAL_PATH": str(storage),
    }
    stamp = run_script("backup.sh", "local", env=env).stdout.strip().splitlines()[-1]
    backup = backups / stamp
    assert sorted(p.name for p in backup.iterdir()) == [
        "SHA256SUMS", "config.tar.gz", "database.dump", "manifest", "roles.sql", "storage.path",
        "storage.tar.gz",
    ]  # fmt: skip
    assert not (backups / "20000101_000000").exists()
    assert (
        f'CREATE ROLE "{role}"' in (backup / "roles.sql").read_text()
        or f"CREATE ROLE {role};" in (backup / "roles.sql").read_text()
    )

    # The disaster: database, role, files and configuration gone.
    local_postgres.drop_database(dsn)
    with psycopg.connect(local_postgres.admin_dsn, autocommit=True) as conn:
        conn.execute(f'drop role "{role}"')
    for path in sorted(storage.rglob("*"), reverse=True):
        path.rmdir() if path.is_dir() else path.unlink()
    (storage / "written-after-backup.txt").write_text("must not survive the restore")
    for path in etc.iterdir():
        path.unlink()

    started = time.monotonic()
    run_script("restore.sh", stamp, env=env)
    elapsed = time.monotonic() - started
    after = snapshot(dsn, role)
    for key in before:
        assert after[key] == before[key], f"{key} differs after the restore"
    assert files_of(storage) == files_before
    assert files_of(etc) == config_before
    # The sqitch registry came back too: nothing left to migrate.
    assert Migrator(dsn, authenticator_password=AUTHENTICATOR_PASSWORD).up() == []
    assert elapsed < 120


def test_restore_refuses_a_backup_whose_checksum_does_not_match(
    application: dict[str, Any], local_postgres: PostgresServer, tmp_path: Path
) -> None:
    dsn = application["dsn"]
    env = {"DATABASE_URL": dsn, "BACKUP_DIR": str(tmp_path / "b"), "FLUXBASE_CONFIG_FILES": ""}
    stamp = run_script("backup.sh", "local", env=env).stdout.strip().splitlines()[-1]
    dump = tmp_path / "b" / stamp / "database.dump"
    dump.write_bytes(dump.read_bytes()[:-10] + b"0123456789")
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("insert into public.todos (task) values ('written after the backup')")
    result = subprocess.run(
        ["bash", str(SCRIPTS / "restore.sh"), stamp],
        env={"PATH": os.environ["PATH"], **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 1
    assert "checksum mismatch" in result.stderr
    with psycopg.connect(dsn) as conn:  # untouched
        assert conn.execute(
            "select count(*) from public.todos where task like 'written after%'"
        ).fetchone() == (1,)


def test_backup_and_restore_refuse_bad_arguments(tmp_path: Path) -> None:
    for script, args in (("backup.sh", ["nowhere"]), ("restore.sh", ["yesterday"]), ("restore.sh", [])):
        result = subprocess.run(
            ["bash", str(SCRIPTS / script), *args],
            env={"PATH": os.environ["PATH"], "DATABASE_URL": "postgresql://x@/y"},
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        assert result.returncode == 2, result.stderr
        assert "usage:" in result.stderr
    result = subprocess.run(
        ["bash", str(SCRIPTS / "backup.sh"), "local"],
        env={"PATH": os.environ["PATH"], "DATABASE_URL": "postgresql://x@/y", "RETENTION_DAYS": "a month"},
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 2 and "RETENTION_DAYS" in result.stderr


@pytest.fixture
def s3_server(tmp_path: Path) -> Iterator[dict[str, str]]:
    """A real moto_server process (S3's API on 127.0.0.1) with an empty bucket."""
    moto = shutil.which("moto_server", path=str(Path(sys.executable).parent)) or tool("moto_server")
    port = free_port()
    process = subprocess.Popen(
        [moto, "-H", "127.0.0.1", "-p", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    env = {
        "BACKUP_S3_ENDPOINT": f"http://127.0.0.1:{port}",
        "BACKUP_S3_BUCKET": "fluxbase-backups-drill",
        "BACKUP_S3_PREFIX": "nightly",
        "AWS_ACCESS_KEY_ID": "drill",
        "AWS_SECRET_ACCESS_KEY": "drill-secret",
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                    break
            except OSError:
                assert time.monotonic() < deadline, "moto_server did not listen within 30 s"
                time.sleep(0.2)
        aws(env, "mb", "s3://fluxbase-backups-drill")
        yield env
    finally:
        process.terminate()
        process.wait(timeout=10)


def aws(env: dict[str, str], *args: str) -> str:
    result = subprocess.run(
        [tool("aws"), "--endpoint-url", env["BACKUP_S3_ENDPOINT"], "s3", *args],
        env={"PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", "/root"), **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_an_s3_backup_restores_on_a_machine_that_kept_nothing(
    application: dict[str, Any], local_postgres: PostgresServer, s3_server: dict[str, str], tmp_path: Path
) -> None:
    """backup.sh s3 uploads; the local copies, the database and the files are lost; restore.sh
    <stamp> s3 downloads, checks and restores. Old backups in the bucket expire."""
    dsn, role, storage = application["dsn"], application["role"], application["storage"]
    before = snapshot(dsn, role)
    files_before = files_of(storage)
    old = tmp_path / "old.txt"
    old.write_text("a backup from long ago")
    aws(s3_server, "cp", str(old), "s3://fluxbase-backups-drill/nightly/20000101_000000/database.dump")
    env = {
        **s3_server,
        "DATABASE_URL": dsn,
        "BACKUP_DIR": str(tmp_path / "backups"),
        "FLUXBASE_CONFIG_FILES": "",
        "FLUXBASE_STORAGE_LOCAL_PATH": str(storage),
    }
    stamp = run_script("backup.sh", "s3", env=env).stdout.strip().splitlines()[-1]
    listing = aws(s3_server, "ls", "--recursive", "s3://fluxbase-backups-drill/nightly/")
    uploaded = {line.split()[-1] for line in listing.splitlines()}
    assert uploaded == {
        f"nightly/{stamp}/{name}"
        for name in ("SHA256SUMS", "config.tar.gz", "database.dump", "manifest", "roles.sql",
                     "storage.path", "storage.tar.gz")
    }  # fmt: skip

    shutil.rmtree(tmp_path / "backups")
    local_postgres.drop_database(dsn)
    shutil.rmtree(storage)
    run_script("restore.sh", stamp, "s3", env={**env, "RESTORE_SKIP": "config"})
    assert snapshot(dsn, role) == before
    assert files_of(storage) == files_before
