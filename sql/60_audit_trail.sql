-- Audit trails by trigger (the table is migrations/audit_trail).  A table's
-- owner turns tracking on with audit.enable_tracking('public.todos') and off
-- with audit.disable_tracking(...); every inserted, updated or deleted row
-- (and every TRUNCATE) is then recorded in audit.record_changes in the
-- writer's own transaction, with the caller read from the request settings
-- the server makes (request.jwt.claims, request.id).  Re-applied by every
-- `fluxbase migrate`, so every statement is idempotent.
--
-- No API role may touch the table; service_role reads through
-- audit.read_record_changes(), the server prunes through
-- audit.prune_record_changes().

grant usage on schema audit to service_role, authenticator;

-- One row per changed row.  Trigger arguments (set by enable_tracking, so no
-- catalog lookup runs per row): 'full' or 'changed', then the primary key's
-- columns.  Runs as its owner so that writers need no privilege on the trail.
create or replace function audit.record_change() returns trigger
  language plpgsql
  security definer
  set search_path = ''
  as $$
  declare
    claims jsonb := coalesce(nullif(pg_catalog.current_setting('request.jwt.claims', true), ''), '{}');
    new_row jsonb;
    old_row jsonb;
    source jsonb;
    key jsonb;
  begin
    if tg_op <> 'DELETE' then
      new_row := pg_catalog.to_jsonb(new);
    end if;
    if tg_op <> 'INSERT' then
      old_row := pg_catalog.to_jsonb(old);
    end if;
    source := coalesce(new_row, old_row);
    if tg_nargs = 2 then
      -- One key column, the common case: a simple expression, no query per row.
      key := pg_catalog.jsonb_build_object(tg_argv[1], source -> tg_argv[1]);
    elsif tg_nargs > 2 then
      select pg_catalog.jsonb_object_agg(k, source -> k) into key
        from pg_catalog.unnest(tg_argv[1:tg_nargs - 1]) as k;
    end if;
    if tg_op = 'UPDATE' and tg_argv[0] = 'changed' then
      select coalesce(pg_catalog.jsonb_object_agg(n.key, n.value), '{}'),
             coalesce(pg_catalog.jsonb_object_agg(n.key, old_row -> n.key), '{}')
        into new_row, old_row
        from pg_catalog.jsonb_each(new_row) as n
       where n.value is distinct from old_row -> n.key;
    end if;
    insert into audit.record_changes
      (op, table_oid, table_schema, table_name, record_id, record, old_record,
       actor_id, actor_role, api_key_id, request_id)
    values (
      tg_op, tg_relid, tg_table_schema, tg_table_name, key, new_row, old_row,
      nullif(claims ->> 'sub', '')::uuid,
      coalesce(claims ->> 'role', nullif(pg_catalog.current_setting('role'), 'none'), session_user),
      -- As the rate limiter names keys: one that names itself, else the service_role key.
      coalesce(
        claims ->> 'api_key_id',
        case when claims ->> 'role' = 'service_role' and not claims ? 'sub' then 'service_role' end
      ),
      nullif(pg_catalog.current_setting('request.id', true), '')
    );
    return null;
  end
  $$;
revoke all on function audit.record_change() from public;

create or replace function audit.record_truncate() returns trigger
  language plpgsql
  security definer
  set search_path = ''
  as $$
  declare
    claims jsonb := coalesce(nullif(pg_catalog.current_setting('request.jwt.claims', true), ''), '{}');
  begin
    insert into audit.record_changes
      (op, table_oid, table_schema, table_name, actor_id, actor_role, request_id)
    values (
      'TRUNCATE', tg_relid, tg_table_schema, tg_table_name,
      nullif(claims ->> 'sub', '')::uuid,
      coalesce(claims ->> 'role', nullif(pg_catalog.current_setting('role'), 'none'), session_user),
      nullif(pg_catalog.current_setting('request.id', true), '')
    );
    return null;
  end
  $$;
revoke all on function audit.record_truncate() from public;

-- Not SECURITY DEFINER: creating a trigger needs the table's owner, so only
-- whoever owns a table can track it (or stop tracking it).  Call it again
-- after changing the table's primary key: the key's columns are trigger
-- arguments.
create or replace function audit.enable_tracking(target regclass, changed_columns_only boolean default false)
  returns void
  language plpgsql
  set search_path = ''
  set client_min_messages = warning  -- no "trigger does not exist, skipping" on the first call
  as $$
  declare
    kind "char";
    key_columns text;
  begin
    select c.relkind into kind from pg_catalog.pg_class c where c.oid = target;
    if kind not in ('r', 'p') then
      raise exception 'audit.enable_tracking: % is not a table', target
        using errcode = 'wrong_object_type';
    end if;
    if target = 'audit.record_changes'::pg_catalog.regclass then
      raise exception 'audit.enable_tracking: the trail cannot track itself'
        using errcode = 'invalid_parameter_value';
    end if;
    select pg_catalog.string_agg(pg_catalog.quote_literal(a.attname), ', ' order by k.ordinality)
      into key_columns
      from pg_catalog.pg_index i
      cross join lateral pg_catalog.unnest(i.indkey) with ordinality as k (attnum, ordinality)
      join pg_catalog.pg_attribute a on a.attrelid = i.indrelid and a.attnum = k.attnum
     where i.indrelid = target and i.indisprimary;
    execute pg_catalog.format('drop trigger if exists fluxbase_audit on %s', target);
    execute pg_catalog.format('drop trigger if exists fluxbase_audit_truncate on %s', target);
    execute pg_catalog.format(
      'create trigger fluxbase_audit after insert or update or delete on %s '
      'for each row execute function audit.record_change(%s)',
      target,
      pg_catalog.concat_ws(', ', pg_catalog.quote_literal(case when changed_columns_only then 'changed' else 'full' end),
                           key_columns)
    );
    execute pg_catalog.format(
      'create trigger fluxbase_audit_truncate after truncate on %s '
      'for each statement execute function audit.record_truncate()',
      target
    );
  end
  $$;
revoke all on function audit.enable_tracking(regclass, boolean) from public;

create or replace function audit.disable_tracking(target regclass) returns void
  language plpgsql
  set search_path = ''
  set client_min_messages = warning
  as $$
  begin
    execute pg_catalog.format('drop trigger if exists fluxbase_audit on %s', target);
    execute pg_catalog.format('drop trigger if exists fluxbase_audit_truncate on %s', target);
  end
  $$;
revoke all on function audit.disable_tracking(regclass) from public;

-- Which tables are tracked, read from the triggers themselves (no second list
-- to fall out of step), and how.
create or replace function audit.tracked_tables()
  returns table (table_oid oid, schema_name text, table_name text, changed_columns_only boolean)
  language sql stable
  security definer
  set search_path = ''
  as $$
    select c.oid, n.nspname::text, c.relname::text,
           pg_catalog.substr(t.tgargs, 1, 8) = '\x6368616e67656400'::bytea
      from pg_catalog.pg_trigger t
      join pg_catalog.pg_class c on c.oid = t.tgrelid
      join pg_catalog.pg_namespace n on n.oid = c.relnamespace
     where t.tgname = 'fluxbase_audit'
       and t.tgfoid = 'audit.record_change()'::pg_catalog.regprocedure
     order by 2, 3
  $$;
revoke all on function audit.tracked_tables() from public;
grant execute on function audit.tracked_tables() to service_role;

-- Reading the trail, newest first, with optional filters; page with
-- before_id (the smallest id of the previous page).  For service_role and
-- the server on behalf of dashboard administrators (the admin API).
create or replace function audit.read_record_changes(
  schema_name text default null,
  table_name text default null,
  actor_id uuid default null,
  op text default null,
  request_id text default null,
  since timestamptz default null,
  until timestamptz default null,
  before_id bigint default null,
  max_rows integer default 100
) returns setof audit.record_changes
  language sql stable
  security definer
  set search_path = ''
  as $$
    select r.*
      from audit.record_changes r
     where (read_record_changes.schema_name is null or r.table_schema = read_record_changes.schema_name)
       and (read_record_changes.table_name is null or r.table_name = read_record_changes.table_name)
       and (read_record_changes.actor_id is null or r.actor_id = read_record_changes.actor_id)
       and (read_record_changes.op is null or r.op = pg_catalog.upper(read_record_changes.op))
       and (read_record_changes.request_id is null or r.request_id = read_record_changes.request_id)
       and (since is null or r.at >= since)
       and (until is null or r.at < until)
       and (before_id is null or r.id < before_id)
     order by r.id desc
     limit least(greatest(coalesce(max_rows, 100), 1), 1000)
  $$;
revoke all on function audit.read_record_changes(text, text, uuid, text, text, timestamptz, timestamptz, bigint, integer)
  from public;
grant execute on function audit.read_record_changes(text, text, uuid, text, text, timestamptz, timestamptz, bigint, integer)
  to service_role, authenticator;

-- Retention (audit.retention), called periodically by every server;
-- deleting what another replica already deleted is harmless.
create or replace function audit.prune_record_changes(older_than interval) returns bigint
  language sql
  security definer
  set search_path = ''
  as $$
    with gone as (
      delete from audit.record_changes where at < pg_catalog.now() - older_than returning 1
    )
    select pg_catalog.count(*) from gone
  $$;
revoke all on function audit.prune_record_changes(interval) from public;
grant execute on function audit.prune_record_changes(interval) to authenticator;
