-- Verify fluxbase:foundation

BEGIN;

select 1 / count(*) from pg_catalog.pg_namespace
 where nspname in ('auth', 'dashboard', 'storage', 'realtime', 'audit', 'extensions')
having count(*) = 6;
select 1 / count(*) from pg_catalog.pg_roles where rolname = 'authenticator' and rolcanlogin;
select 1 / count(*) from pg_catalog.pg_roles where rolname = 'service_role' and rolbypassrls;
select auth.uid(), auth.role(), auth.email(), auth.jwt();

ROLLBACK;
