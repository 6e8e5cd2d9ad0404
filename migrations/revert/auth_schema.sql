-- Revert fluxbase:auth_schema from pg
--
-- Back to what foundation alone gives.  The functions of sql/21_auth_*.sql
-- to sql/27_auth_*.sql work on these tables, so they go too; the next
-- `fluxbase migrate` that re-deploys this change re-creates them.  Only the
-- claim helpers (created by foundation, owned by sql/20_auth_claims.sql)
-- stay in schema auth.

BEGIN;

do $functions$
declare
  fn regprocedure;
begin
  for fn in
    select p.oid::pg_catalog.regprocedure
      from pg_catalog.pg_proc p
     where p.pronamespace = 'auth'::pg_catalog.regnamespace
       and p.proname not in ('jwt', 'uid', 'role', 'email')
  loop
    -- regprocedure's text is the quoted, schema-qualified signature.
    execute pg_catalog.format('drop function %s', fn);
  end loop;
end
$functions$;

drop table audit.events;
drop table auth.one_time_tokens;
drop table auth.refresh_tokens;
drop table auth.sessions;
drop table auth.identities;
drop table auth.users;

COMMIT;
