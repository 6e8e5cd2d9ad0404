-- Revert fluxbase:dashboard_schema from pg
--
-- The functions of sql/50_dashboard.sql work on these tables, so they go
-- too; the schema itself belongs to foundation and stays.

BEGIN;

do $functions$
declare
  fn regprocedure;
begin
  for fn in
    select p.oid::pg_catalog.regprocedure from pg_catalog.pg_proc p
     where p.pronamespace = 'dashboard'::pg_catalog.regnamespace
  loop
    execute pg_catalog.format('drop function %s', fn);
  end loop;
end
$functions$;

-- sql/50_dashboard.sql opened the schema to service_role for its functions.
revoke usage on schema dashboard from service_role;

drop table dashboard.activity_log;
drop table dashboard.api_keys;
drop table dashboard.one_time_tokens;
drop table dashboard.mfa_challenges;
drop table dashboard.sessions;
drop table dashboard.backup_codes;
drop table dashboard.users;

COMMIT;
