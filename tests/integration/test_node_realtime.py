"""Realtime under supabase-js from npm (tests/node/realtime/, `node --test`).

Starts a real `fluxbase serve` on a free port (ICU database, autoconfirmed sign-ups, a short
session check and presence lease) and runs the Node suite against it: postgres_changes with RLS
and filters, TRUNCATE, broadcast with ack and larger than a NOTIFY payload, presence (and a
replica that died), setAuth, and a signed-out session's channel being closed. `make test`
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

SUITE = ROOT / "tests" / "node" / "realtime"

SCHEMA = """
create table public.notes (
  id bigint generated always as identity primary key,
  owner uuid not null,
  title text,
  secret text
);
alter table public.notes enable row level security;
create policy notes_owner_reads on public.notes for select to authenticated using (owner = auth.uid());
grant select (id, owner, title) on public.notes to authenticated;
grant all on public.notes to service_role;

create table public.items (id bigint primary key, n integer, label text);
grant select on public.items to anon, authenticated;
grant all on public.items to service_role;

select realtime.enable('public.notes');
select realtime.enable('public.items');

-- Test helpers the suite calls as service_role: a truncate, and a replica that tracks a member
-- and dies at once (it never heartbeats), written as the server's own relay message.
create function public.truncate_items() returns void language sql security definer set search_path = ''
  as $$ truncate public.items $$;
create function public.dead_replica_tracks(topic text, member text) returns void
  language sql security definer set search_path = ''
  as $$
    select pg_catalog.pg_notify('fluxbase_broadcast', pg_catalog.jsonb_build_object(
      'k', 'p', 't', topic, 'n', 'crashed-replica', 'key', member,
      'join', pg_catalog.jsonb_build_object('ghost-1', pg_catalog.jsonb_build_object('phx_ref', 'ghost-1')),
      'leave', '{}'::jsonb)::text)
  $$;
revoke all on function public.truncate_items(), public.dead_replica_tracks(text, text) from public;
grant execute on function public.truncate_items(), public.dead_replica_tracks(text, text) to service_role;
"""


def _installed() -> None:
    if (SUITE / "node_modules" / "@supabase" / "supabase-js").is_dir():
        return
    npm = shutil.which("npm")
    assert npm is not None, "npm is needed for the Node conformance suite"
    subprocess.run([npm, "ci", "--no-audit", "--no-fund"], cwd=SUITE, check=True, timeout=300)


def test_supabase_js_realtime_suite(postgres: PostgresServer) -> None:
    node = shutil.which("node")
    if node is None:
        pytest.fail("node is needed for the Node conformance suite (install Node.js 18 or later)")
    _installed()
    dsn = postgres.create_database("node_realtime", icu_locale="en-US")
    try:
        Migrator(dsn, authenticator_password=AUTHENTICATOR_PASSWORD).up()
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(SCHEMA)  # type: ignore[arg-type]
        env = server_env(
            dsn,
            FLUXBASE_AUTH_AUTOCONFIRM="true",
            FLUXBASE_AUTH_SESSION_CHECK_INTERVAL="500ms",
            FLUXBASE_REALTIME_PRESENCE_LEASE="1500ms",
            FLUXBASE_REALTIME_MAX_CONNECTIONS_PER_USER="3",
        )
        server = start_server(env, "serve", "--no-migrate")
        try:
            result = subprocess.run(
                [node, "--test", "--test-concurrency=1"],
                cwd=SUITE,
                env={
                    "PATH": os.environ["PATH"],
                    "HOME": os.environ.get("HOME", "/root"),
                    "FLUXBASE_URL": server.url,
                    "FLUXBASE_ANON_KEY": api_key(JWT_SECRET, "anon"),
                    "FLUXBASE_SERVICE_KEY": api_key(JWT_SECRET, "service_role"),
                },
                capture_output=True,
                text=True,
                timeout=300,
                check=False,
            )
        finally:
            server.terminate()
    finally:
        postgres.drop_database(dsn)
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
    assert "# fail 0" in result.stdout
    assert "# pass " in result.stdout and "# pass 0" not in result.stdout
