-- Revert fluxbase:realtime_log from pg
--
-- The functions of sql/40_realtime.sql work on this table, so they go too;
-- dropping the capture function with cascade removes the triggers that
-- realtime.enable() put on application tables.

BEGIN;

drop function if exists realtime.capture() cascade;

do $functions$
declare
  fn regprocedure;
begin
  for fn in
    select p.oid::pg_catalog.regprocedure
      from pg_catalog.pg_proc p
     where p.pronamespace = 'realtime'::pg_catalog.regnamespace
  loop
    execute pg_catalog.format('drop function %s', fn);
  end loop;
end
$functions$;

drop table realtime.log;
revoke usage on schema realtime from authenticator;

COMMIT;
