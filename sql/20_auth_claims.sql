-- The caller's JWT claims for Row-Level Security policies: auth.jwt(),
-- auth.uid(), auth.role(), auth.email(), as in Supabase.  Re-applied by every
-- `fluxbase migrate`, so every statement is idempotent.
--
-- The foundation migration created these four first and still does (a
-- deployed migration is not rewritten, and its verify calls them); from here
-- on this file owns them: a change to a claim helper is made here, and
-- reaches every database, old or new, at its next migrate.  They read only a
-- setting, no table, so they belong to foundation's logic: reverting
-- auth_schema keeps them.
--
-- Policies call them as the caller, so every API role may execute them (and
-- use schema auth to reach them); nothing else in auth is granted to anon or
-- authenticated.  They are not SECURITY DEFINER: they run as the caller and
-- read the caller's own transaction setting.

grant usage on schema auth to anon, authenticated, service_role;

-- The caller's JWT claims, as the server set them for this transaction.
create or replace function auth.jwt() returns jsonb
  language sql stable
  as $$
    select coalesce(nullif(pg_catalog.current_setting('request.jwt.claims', true), ''), '{}')::jsonb
  $$;
grant execute on function auth.jwt() to anon, authenticated, service_role;

create or replace function auth.uid() returns uuid
  language sql stable
  as $$ select nullif(auth.jwt() ->> 'sub', '')::uuid $$;
grant execute on function auth.uid() to anon, authenticated, service_role;

create or replace function auth.role() returns text
  language sql stable
  as $$ select auth.jwt() ->> 'role' $$;
grant execute on function auth.role() to anon, authenticated, service_role;

create or replace function auth.email() returns text
  language sql stable
  as $$ select auth.jwt() ->> 'email' $$;
grant execute on function auth.email() to anon, authenticated, service_role;
