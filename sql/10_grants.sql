-- Who may use what.  Re-applied by every `fluxbase migrate`, so it must stay
-- idempotent; it is the place to read what each API role can reach.
--
-- anon and authenticated get no table privileges by default: a table becomes
-- reachable through the data API only when a DBA grants it (and, for rows,
-- when RLS policies allow).  service_role is the administrator's key: it
-- bypasses RLS and gets every privilege on what the owner creates in public.

grant usage on schema public to anon, authenticated, service_role;
grant usage on schema extensions to anon, authenticated, service_role;

-- Schema auth and its claim helpers: sql/20_auth_claims.sql.

alter default privileges in schema public grant all on tables to service_role;
alter default privileges in schema public grant all on sequences to service_role;
alter default privileges in schema public grant execute on functions to service_role;
