-- Revert fluxbase:foundation

BEGIN;

-- sql/30_schema_reload.sql's event triggers: they belong to the database, not
-- to a schema, so they are dropped by name (their function goes with extensions).
drop event trigger if exists fluxbase_schema_reload_ddl;
drop event trigger if exists fluxbase_schema_reload_drop;

drop schema if exists auth, dashboard, storage, realtime, audit cascade;
drop extension if exists pg_trgm;
drop extension if exists pgcrypto;
drop extension if exists "uuid-ossp";
drop schema if exists extensions cascade;

-- Take back every privilege this database gave the API roles, then drop the
-- roles unless another database of the cluster still uses them.
drop owned by anon, authenticated, service_role, authenticator;
do $roles$
declare
  name text;
begin
  foreach name in array array['authenticator', 'anon', 'authenticated', 'service_role'] loop
    begin
      execute pg_catalog.format('drop role if exists %I', name);
    exception when dependent_objects_still_exist then
      raise notice 'role % kept: another database of this cluster uses it', name;
    end;
  end loop;
end
$roles$;

COMMIT;
