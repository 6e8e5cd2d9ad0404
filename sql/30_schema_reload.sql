-- DDL reloads the data API's schema cache: after every DDL command (and every
-- drop) an event trigger sends `NOTIFY pgrst, 'reload schema'`, PostgREST's
-- convention, which every server process listens for.  Re-applied by every
-- `fluxbase migrate`, so it must stay idempotent.
--
-- The function lives in `extensions`, which the data API never exposes (no
-- RPC), and which the foundation's revert drops; revert/foundation.sql also
-- drops the two event triggers by name.
--
-- Only a superuser may create event triggers.  When the migrating role is not
-- one (a managed database), this file skips them with a NOTICE: the cache then
-- reloads only on an explicit NOTIFY, as with PostgREST.

create or replace function extensions.notify_schema_reload() returns event_trigger
  language plpgsql
  as $$
  begin
    -- The notification is delivered at commit, so a rolled back migration sends
    -- nothing, and several commands in one transaction send one (PostgreSQL
    -- folds identical notifications of a transaction).
    perform pg_catalog.pg_notify('pgrst', 'reload schema');
  end
  $$;

comment on function extensions.notify_schema_reload() is
  'Event trigger: asks every Fluxbase server to reload its schema cache after DDL.';

do $event_triggers$
begin
  if not (select rolsuper from pg_catalog.pg_roles where rolname = current_user) then
    raise notice 'not a superuser: event triggers fluxbase_schema_reload_* skipped; '
      'run NOTIFY pgrst, ''reload schema'' after DDL to refresh the data API';
    return;
  end if;
  if not exists (select from pg_catalog.pg_event_trigger where evtname = 'fluxbase_schema_reload_ddl') then
    create event trigger fluxbase_schema_reload_ddl on ddl_command_end
      execute function extensions.notify_schema_reload();
  end if;
  if not exists (select from pg_catalog.pg_event_trigger where evtname = 'fluxbase_schema_reload_drop') then
    create event trigger fluxbase_schema_reload_drop on sql_drop
      execute function extensions.notify_schema_reload();
  end if;
end
$event_triggers$;
