-- Revert fluxbase:storage_schema from pg
--
-- The functions and triggers of sql/50_storage.sql go with the tables.

BEGIN;

drop table storage.resumable_uploads;
drop table storage.objects;
drop table storage.buckets;

do $functions$
declare
  fn regprocedure;
begin
  for fn in
    select p.oid::pg_catalog.regprocedure
      from pg_catalog.pg_proc p
     where p.pronamespace = 'storage'::pg_catalog.regnamespace
  loop
    execute pg_catalog.format('drop function %s', fn);
  end loop;
end
$functions$;

revoke usage on schema storage from anon, authenticated, service_role, authenticator;

COMMIT;
