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
  declare
    changed boolean;
  begin
    if tg_event = 'sql_drop' then
      changed := exists (select from pg_catalog.pg_event_trigger_dropped_objects() where not is_temporary);
    elsif tg_tag like 'DROP %' or tg_tag = 'REFRESH MATERIALIZED VIEW' then
      -- Drops are reported by sql_drop; a refresh changes rows, not structure
      -- (a refresh every minute must not reload every server every minute).
      changed := false;
    else
      -- Temporary objects (functions that create temp tables per call) are
      -- invisible to the API; a command that reports nothing counts as a change.
      changed := not exists (select from pg_catalog.pg_event_trigger_ddl_commands())
        or exists (
          select from pg_catalog.pg_event_trigger_ddl_commands() where schema_name is distinct from 'pg_temp'
        );
    end if;
    if changed then
      -- Delivered at commit: a rolled back migration sends nothing, and the
      -- commands of one transaction send one (identical notifications fold).
      perform pg_catalog.pg_notify('pgrst', 'reload schema');
    end if;
  end
  $$;

-- Only an event trigger calls it.
revoke all on function extensions.notify_schema_reload() from public;

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
