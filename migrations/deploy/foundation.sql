-- Deploy fluxbase:foundation
-- Extensions, the four API roles, the internal schemas and the claim helpers
-- that Row-Level Security policies call.  Every object is schema-qualified:
-- `fluxbase migrate` runs this with the migration registry first on the
-- search_path.

BEGIN;

-- Extensions live in their own schema so that the data API, which exposes
-- `public`, never offers pgcrypto's or uuid-ossp's functions as RPC.
create schema if not exists extensions;
create extension if not exists "uuid-ossp" with schema extensions;
create extension if not exists pgcrypto with schema extensions;
create extension if not exists pg_trgm with schema extensions;

-- Roles belong to the cluster, not the database: another database of the
-- same cluster may have created them already.
do $roles$
begin
  if not exists (select from pg_catalog.pg_roles where rolname = 'anon') then
    create role anon nologin noinherit;
  end if;
  if not exists (select from pg_catalog.pg_roles where rolname = 'authenticated') then
    create role authenticated nologin noinherit;
  end if;
  if not exists (select from pg_catalog.pg_roles where rolname = 'service_role') then
    create role service_role nologin noinherit bypassrls;
  end if;
  -- The server logs in as authenticator, which owns nothing and has no
  -- privilege of its own: it can only switch into the three API roles.
  if not exists (select from pg_catalog.pg_roles where rolname = 'authenticator') then
    create role authenticator login noinherit;
  end if;
end
$roles$;

grant anon, authenticated, service_role to authenticator;

-- Internal schemas: never exposed through the data API, whatever a request
-- asks for; only the functions that policies need are granted below.
create schema auth;
create schema dashboard;
create schema storage;
create schema realtime;
create schema audit;
revoke all on schema auth, dashboard, storage, realtime, audit from public;

-- The caller's JWT claims, as the server set them for this transaction.
create function auth.jwt() returns jsonb
  language sql stable
  as $$
    select coalesce(nullif(pg_catalog.current_setting('request.jwt.claims', true), ''), '{}')::jsonb
  $$;

create function auth.uid() returns uuid
  language sql stable
  as $$ select nullif(auth.jwt() ->> 'sub', '')::uuid $$;

create function auth.role() returns text
  language sql stable
  as $$ select auth.jwt() ->> 'role' $$;

create function auth.email() returns text
  language sql stable
  as $$ select auth.jwt() ->> 'email' $$;

COMMIT;
