"""`fluxbase test`: the application's pgTAP files (db/tests/*.sql) through pg_prove, on a throwaway copy.

A template database is built from the migrations (Fluxbase's, sql/, the
application's), its seed, pgTAP and the tests.* helpers (testing/), and kept
for the next run while none of those files change; each run copies it
(CREATE DATABASE ... TEMPLATE), runs pg_prove on the copy and drops it.  The
real database is never changed: the helpers exist only in the copies.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from fluxbase import __version__
from fluxbase.config import Config, ConfigError, Problem
from fluxbase.console import owner_database
from fluxbase.db.app_reset import load_seed
from fluxbase.db.migrate import Migrator
from fluxbase.paths import migrations_dir, sql_dir, testing_dir

HELPERS = "pgtap_helpers.sql"
TEMPLATE_SUFFIX = "_fbtest_tpl"
COMMENT = "fluxbase test template "
# Serialises template builds of concurrent `fluxbase test` runs (any key but sqitch's).
BUILD_LOCK = 75474064


def test_files(config: Config, files: Sequence[str]) -> list[Path]:
    folder = config.app_migrations_dir / "tests"
    paths = [Path(f) for f in files] or sorted(folder.glob("*.sql"))
    if not paths:
        raise ConfigError([Problem(str(folder), "no *.sql test files: write pgTAP tests there")])
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        raise ConfigError([Problem(path, "no such file") for path in missing])
    return paths


def _pg_prove() -> str:
    found = shutil.which("pg_prove")
    if found is None:
        raise ConfigError(
            [Problem("pg_prove", "not found; Debian: apt-get install libtap-parser-sourcehandler-pgtap-perl")]
        )
    return found


def fingerprint(app_folder: Path) -> str:
    """What the template is built from: when any of it changes, the template is built again."""
    digest = hashlib.sha256(__version__.encode())
    sources = [migrations_dir(), sql_dir(), testing_dir(), app_folder]
    for root in sources:
        files = sorted(p for p in root.rglob("*") if p.is_file()) if root.is_dir() else []
        for path in files:
            relative = path.relative_to(root)
            if root == app_folder and relative.parts[0] == "tests":
                continue  # the tests themselves run in the copy
            digest.update(f"{root.name}/{relative}\0".encode() + path.read_bytes() + b"\0")
    return digest.hexdigest()[:32]


def with_database(url: str, name: str) -> str:
    return make_conninfo(url, dbname=name)


def _same_locale(conn: psycopg.Connection[Any]) -> sql.Composable:
    """CREATE DATABASE options that give a copy the source database's encoding and collation."""
    row = conn.execute(
        "select pg_encoding_to_char(d.encoding), d.datcollate, d.datctype, to_jsonb(d) "
        "from pg_database d where d.datname = current_database()"
    ).fetchone()
    assert row is not None
    encoding, collate, ctype, details = row
    options = sql.SQL("template template0 encoding {} lc_collate {} lc_ctype {}").format(
        sql.Literal(encoding), sql.Literal(collate), sql.Literal(ctype)
    )
    icu = details.get("daticulocale") or details.get("datlocale")  # PostgreSQL 15-16, 17+
    if details.get("datlocprovider") == "i" and icu:
        options = sql.SQL("{} locale_provider icu icu_locale {}").format(options, sql.Literal(icu))
    return options


def _build_template(config: Config, url: str, name: str, stamp: str, conn: psycopg.Connection[Any]) -> None:
    conn.execute(sql.SQL("drop database if exists {} with (force)").format(sql.Identifier(name)))
    conn.execute(sql.SQL("create database {} {}").format(sql.Identifier(name), _same_locale(conn)))
    template_url = with_database(url, name)
    try:
        migrator = Migrator(template_url, app_migrations=config.app_migrations_dir)
        migrator.up()
        load_seed(migrator, config.app_migrations_dir / "seed.sql")
        with psycopg.connect(template_url, autocommit=True) as template:
            try:
                template.execute("create extension if not exists pgtap schema extensions")
            except psycopg.Error as error:
                raise ConfigError(
                    [
                        Problem(
                            "pgTAP",
                            f"not installed in the database server ({str(error).strip()}); "
                            "Debian: apt-get install postgresql-<major version>-pgtap",
                        )
                    ]
                ) from None
            template.execute((testing_dir() / HELPERS).read_text(encoding="utf-8"))
    except BaseException:
        conn.execute(sql.SQL("drop database if exists {} with (force)").format(sql.Identifier(name)))
        raise
    conn.execute(sql.SQL("comment on database {} is {}").format(sql.Identifier(name), sql.Literal(stamp)))


def _libpq_env(url: str) -> dict[str, str]:
    """pg_prove runs psql: the copy's connection as PG* variables (no password on a command line)."""
    names = {"host": "PGHOST", "port": "PGPORT", "user": "PGUSER", "password": "PGPASSWORD",
             "dbname": "PGDATABASE", "sslmode": "PGSSLMODE"}  # fmt: skip
    env = dict(os.environ)
    for key, value in conninfo_to_dict(url).items():
        if key in names and value is not None:
            env[names[key]] = str(value)
    return env


def run_tests(config: Config, files: Sequence[str], verbose: bool) -> int:
    """Runs the tests on a fresh copy of the template; pg_prove's exit status (0: all passed)."""
    paths = test_files(config, files)
    pg_prove = _pg_prove()
    stamp = COMMENT + fingerprint(config.app_migrations_dir)
    with owner_database(config) as url, psycopg.connect(url, autocommit=True) as conn:
        source = conn.execute("select current_database()").fetchone()
        assert source is not None
        template = f"{source[0][:40]}{TEMPLATE_SUFFIX}"
        copy = f"{source[0][:40]}_fbtest_{uuid.uuid4().hex[:8]}"
        conn.execute("select pg_advisory_lock(%s)", (BUILD_LOCK,))
        try:
            built = conn.execute(
                "select shobj_description(oid, 'pg_database') from pg_database where datname = %s",
                (template,),
            ).fetchone()
            if built is None or built[0] != stamp:
                _build_template(config, url, template, stamp, conn)
            conn.execute(
                sql.SQL("create database {} template {}").format(
                    sql.Identifier(copy), sql.Identifier(template)
                )
            )
        finally:
            conn.execute("select pg_advisory_unlock(%s)", (BUILD_LOCK,))
        try:
            # Settings of a database are not copied with it: the search path tests expect.
            conn.execute(
                sql.SQL('alter database {} set search_path = "$user", public, extensions').format(
                    sql.Identifier(copy)
                )
            )
            command = [pg_prove, *(["--verbose"] if verbose else []), *map(str, paths)]
            return subprocess.call(command, env=_libpq_env(with_database(url, copy)))
        finally:
            conn.execute(sql.SQL("drop database if exists {} with (force)").format(sql.Identifier(copy)))
