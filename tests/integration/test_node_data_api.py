"""The data API under supabase-js and postgrest-js from npm (tests/node/rest/, `node --test`).

Starts a real `fluxbase serve` on a free port over a database loaded with
tests/fixtures/rest_compat_schema.sql, then runs the Node suite against it. `make test`
installs the packages first (npm ci); run alone, this test installs them if missing.
"""

from __future__ import annotations

import os
import shutil
import subprocess

import psycopg
import pytest

from fluxbase.db.migrate import Migrator
from fluxbase.security.api_keys import api_key
from harness import AUTHENTICATOR_PASSWORD, JWT_SECRET, ROOT, PostgresServer, server_env, start_server

SUITE = ROOT / "tests" / "node" / "rest"
FIXTURE = ROOT / "tests" / "fixtures" / "rest_compat_schema.sql"


def _installed() -> None:
    if (SUITE / "node_modules" / "@supabase" / "supabase-js").is_dir():
        return
    npm = shutil.which("npm")
    assert npm is not None, "npm is needed for the Node conformance suite"
    subprocess.run([npm, "ci", "--no-audit", "--no-fund"], cwd=SUITE, check=True, timeout=300)


def test_supabase_js_and_postgrest_js_suite(postgres: PostgresServer) -> None:
    node = shutil.which("node")
    if node is None:
        pytest.fail("node is needed for the Node conformance suite (install Node.js 18 or later)")
    _installed()
    dsn = postgres.create_database("node")
    try:
        Migrator(dsn, authenticator_password=AUTHENTICATOR_PASSWORD).up()
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(FIXTURE.read_text())  # type: ignore[arg-type]
            # The planner believes readings is large: count=estimated shows its estimate.
            conn.execute("update pg_class set reltuples = 40000 where oid = 'public.readings'::regclass")
        server = start_server(server_env(dsn, FLUXBASE_API_MAX_ROWS="10"), "serve", "--no-migrate")
        # A second server as PostgREST 12 with aggregates enabled, for what differs there.
        legacy_env = server_env(
            dsn, FLUXBASE_API_POSTGREST_VERSION="12", FLUXBASE_API_AGGREGATES_ENABLED="true"
        )
        legacy = start_server(legacy_env, "serve", "--no-migrate")
        try:
            env = {
                "PATH": os.environ["PATH"],
                "HOME": os.environ.get("HOME", "/root"),
                "FLUXBASE_URL": server.url,
                "FLUXBASE_URL_V12_AGGREGATES": legacy.url,
                "FLUXBASE_ANON_KEY": api_key(JWT_SECRET, "anon"),
                "FLUXBASE_SERVICE_KEY": api_key(JWT_SECRET, "service_role"),
            }
            result = subprocess.run(
                [node, "--test", "--test-concurrency=1"],
                cwd=SUITE,
                env=env,
                capture_output=True,
                text=True,
                timeout=300,
                check=False,
            )
        finally:
            legacy.terminate()
            server.terminate()
    finally:
        postgres.drop_database(dsn)
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
    assert "# fail 0" in result.stdout
    assert "# pass " in result.stdout and "# pass 0" not in result.stdout
