-- Realtime change capture: realtime.enable(table) puts an AFTER ROW trigger on
-- a table; each change is appended to realtime.log and announced with
-- `NOTIFY fluxbase_realtime, '<log id>'` -- the id, never the row, so a row
-- of any width never makes the writer's transaction fail (NOTIFY payloads
-- must stay under 8000 bytes).  Re-applied by every `fluxbase migrate`, so
-- every statement is idempotent; the table itself is migrations/realtime_log.
--
-- Only the server reads the log, through the SECURITY DEFINER functions
-- below that `authenticator` alone may execute; the API roles have no
-- privilege on the table or on these functions.

-- Runs as its owner so that writers need no privilege on realtime.log.
create or replace function realtime.capture() returns trigger
  language plpgsql
  security definer
  set search_path = ''
  as $$
  declare
    new_id bigint;
  begin
    insert into realtime.log (table_oid, schema_name, table_name, type, record, old_record)
    values (
      tg_relid,
      tg_table_schema,
      tg_table_name,
      tg_op,
      case when tg_op in ('INSERT', 'UPDATE') then pg_catalog.to_jsonb(new) end,
      case when tg_op in ('UPDATE', 'DELETE') then pg_catalog.to_jsonb(old) end
    )
    returning id into new_id;
    perform pg_catalog.pg_notify('fluxbase_realtime', new_id::text);
    return null;
  end
  $$;
revoke all on function realtime.capture() from public;

-- Not SECURITY DEFINER: creating a trigger needs the table's owner, so only
-- whoever owns a table can publish its changes.  Tables need a primary key:
-- the server checks visibility of a change by it, and DELETEs send only it.
create or replace function realtime.enable(target regclass) returns void
  language plpgsql
  set search_path = ''
  as $$
  begin
    if not exists (
      select from pg_catalog.pg_index i where i.indrelid = target and i.indisprimary
    ) then
      raise exception 'realtime.enable: % has no primary key', target
        using errcode = 'invalid_table_definition',
              hint = 'realtime checks each change by its primary key; add one first';
    end if;
    execute pg_catalog.format('drop trigger if exists fluxbase_realtime on %s', target);
    execute pg_catalog.format(
      'create trigger fluxbase_realtime after insert or update or delete on %s '
      'for each row execute function realtime.capture()',
      target
    );
  end
  $$;
revoke all on function realtime.enable(regclass) from public;

create or replace function realtime.disable(target regclass) returns void
  language plpgsql
  set search_path = ''
  as $$
  begin
    execute pg_catalog.format('drop trigger if exists fluxbase_realtime on %s', target);
  end
  $$;
revoke all on function realtime.disable(regclass) from public;

-- Which tables publish changes: the ones carrying the capture trigger, so
-- there is no second list to fall out of step with the triggers.
create or replace function realtime.enabled_tables()
  returns table (table_oid oid, schema_name text, table_name text)
  language sql stable
  security definer
  set search_path = ''
  as $$
    select c.oid, n.nspname::text, c.relname::text
      from pg_catalog.pg_trigger t
      join pg_catalog.pg_class c on c.oid = t.tgrelid
      join pg_catalog.pg_namespace n on n.oid = c.relnamespace
     where t.tgname = 'fluxbase_realtime'
       and t.tgfoid = 'realtime.capture()'::pg_catalog.regprocedure
  $$;
revoke all on function realtime.enabled_tables() from public;

-- The reader's horizon: every transaction older than this xid has ended, so
-- the log rows it wrote are final and visible.  Call it in the same
-- REPEATABLE READ transaction as read_changes so both see one snapshot.
create or replace function realtime.horizon() returns pg_catalog.xid8
  language sql stable
  security definer
  set search_path = ''
  as $$ select pg_catalog.pg_snapshot_xmin(pg_catalog.pg_current_snapshot()) $$;
revoke all on function realtime.horizon() from public;

-- One batch of the log: rows of transactions in [from_xid, until_xid) after
-- after_id, in id order.  The cursor is (from_xid, after_id); when a batch
-- comes back short the reader moves from_xid to until_xid and after_id to 0.
create or replace function realtime.read_changes(
  from_xid pg_catalog.xid8, until_xid pg_catalog.xid8, after_id bigint, max_rows integer
) returns setof realtime.log
  language sql stable
  security definer
  set search_path = ''
  as $$
    select l.*
      from realtime.log l
     where l.xid >= from_xid and l.xid < until_xid and l.id > after_id
     order by l.id
     limit max_rows
  $$;
revoke all on function realtime.read_changes(pg_catalog.xid8, pg_catalog.xid8, bigint, integer) from public;

-- Pruning, called periodically by the server: rows older than the retention
-- have long been read by every process that was up when they were written.
create or replace function realtime.prune(older_than interval) returns bigint
  language sql
  security definer
  set search_path = ''
  as $$
    with gone as (
      delete from realtime.log where commit_timestamp < pg_catalog.now() - older_than returning 1
    )
    select pg_catalog.count(*) from gone
  $$;
revoke all on function realtime.prune(interval) from public;

grant usage on schema realtime to authenticator;
grant execute on function
  realtime.enabled_tables(),
  realtime.horizon(),
  realtime.read_changes(pg_catalog.xid8, pg_catalog.xid8, bigint, integer),
  realtime.prune(interval)
  to authenticator;
