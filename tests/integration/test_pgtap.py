"""Runs the pgTAP suites in tests/sql/ with pg_prove against a freshly migrated database."""

from __future__ import annotations

import shutil
import subprocess
from urllib.parse import parse_qs, urlsplit

import psycopg
import pytest

from fluxbase.db.migrate import Migrator
from harness import AUTHENTICATOR_PASSWORD, ROOT, PostgresServer

SUITES = sorted((ROOT / "tests" / "sql").glob("*.sql"))


@pytest.fixture(scope="module")
def pgtap_dsn(local_postgres: PostgresServer) -> str:
    # A real collation, so collation-dependent SQL (realtime filters on text) is covered.
    dsn = local_postgres.create_database("pgtap", icu_locale="en-US")
    Migrator(dsn, authenticator_password=AUTHENTICATOR_PASSWORD).up()
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("create extension if not exists pgtap")
    return dsn


@pytest.mark.skipif(not shutil.which("pg_prove"), reason="pg_prove is installed by `make test`")
@pytest.mark.parametrize("suite", SUITES, ids=[s.stem for s in SUITES])
def test_pgtap_suite(pgtap_dsn: str, suite: object) -> None:
    parts = urlsplit(pgtap_dsn)
    query = parse_qs(parts.query)
    result = subprocess.run(
        [
            "pg_prove", "--verbose", "--failures",
            "-h", query["host"][0], "-p", query["port"][0], "-U", parts.username or "postgres",
            "-d", parts.path.lstrip("/"), str(suite),
        ],
        capture_output=True,
        text=True,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Result: PASS" in result.stdout
