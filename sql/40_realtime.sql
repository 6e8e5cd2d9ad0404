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

-- Which changes of one table each group of subscribers may see, in ONE statement for every
-- group (the way Supabase's realtime.apply_rls works), instead of one role-switched
-- transaction per group.  `changes` is a JSON array of {"r": row, "d": true if DELETE}: the
-- row is the written record (the old one for a DELETE).  `groups` is a JSON array of
-- {"role": API role, "claims": {...}, "changes": [1-based indexes into changes]}.  Returns
-- (group, change) for every visible pair, 1-based, and (group, null) for a group whose check
-- failed (it receives nothing: failing closed, without taking the other groups down).
--
-- For each group the function switches, transaction-locally, to the group's role and claims
-- and asks what the server used to ask in the group's own transaction: the record must pass
-- the role's SELECT policies as it was written, and a row inserted or updated must still be
-- visible now, PostgreSQL applying RLS itself to a re-read by primary key.  A table without
-- RLS, or a role that bypasses it, sees every change (column grants are the server's job).
-- Role and claims are put back as they were before returning.
--
-- SECURITY INVOKER on purpose: SET ROLE is refused inside security-definer functions, and
-- a role switch is only allowed to roles the session user (authenticator) is a member of.
-- Only authenticator may execute it, and it only switches into the three API roles.  No SET
-- search_path: policy expressions are printed (pg_get_expr) and evaluated under the caller's
-- search_path, exactly as before; the function's own references are schema-qualified.
-- Identifiers come from the catalog through format('%I'), types from format_type(), values
-- are bound (EXECUTE ... USING).
create or replace function realtime.visible_changes(target regclass, changes jsonb, groups jsonb)
  returns table (group_index integer, change_index integer)
  language plpgsql
  volatile
  as $$
  declare
    rel_schema text;
    rel_name text;
    rel_rls boolean;
    key_match text;
    saved_role text := pg_catalog.current_setting('role');
    saved_claims text := pg_catalog.current_setting('request.jwt.claims', true);
    policy_queries jsonb := '{}';  -- role -> its policy query, or JSON null: no row visible
    bypass jsonb := '{}';          -- role -> whether it bypasses RLS
    live_query text;
    policy_query text;
    group_item jsonb;
    group_no bigint;
    role_name text;
    wanted integer[];
    visible integer[];
    failed boolean;
  begin
    if pg_catalog.jsonb_typeof(groups) is distinct from 'array'
       or pg_catalog.jsonb_typeof(changes) is distinct from 'array' then
      raise exception 'realtime.visible_changes: changes and groups must be JSON arrays'
        using errcode = 'invalid_parameter_value';
    end if;
    -- Every role is checked before anything runs: only the API roles, nothing else.
    if exists (
      select from pg_catalog.jsonb_array_elements(groups) g
       where pg_catalog.jsonb_typeof(g) is distinct from 'object'
          or (g->>'role') is null
          or (g->>'role') not in ('anon', 'authenticated', 'service_role')
    ) then
      raise exception 'realtime.visible_changes: every group needs an API role'
        using errcode = 'invalid_parameter_value';
    end if;

    select n.nspname::text, c.relname::text, c.relrowsecurity
      into rel_schema, rel_name, rel_rls
      from pg_catalog.pg_class c join pg_catalog.pg_namespace n on n.oid = c.relnamespace
     where c.oid = target;
    select pg_catalog.string_agg(
             pg_catalog.format('t.%I operator(pg_catalog.=) (k._fb_change->''r''->>%L)::%s',
                               a.attname, a.attname, pg_catalog.format_type(a.atttypid, a.atttypmod)),
             ' and ' order by a.attnum)
      into key_match
      from pg_catalog.pg_index i
      join pg_catalog.pg_attribute a on a.attrelid = i.indrelid and a.attnum operator(pg_catalog.=) any(i.indkey)
     where i.indrelid = target and i.indisprimary;
    if rel_name is null or key_match is null then
      return;  -- no such table, or no primary key: no change can be checked, none is visible
    end if;

    -- The deleted row is gone: its DELETE passes on the policy check alone.
    live_query := pg_catalog.format(
      'select pg_catalog.array_agg(k._fb_i::integer order by k._fb_i) '
      'from pg_catalog.jsonb_array_elements($1) with ordinality as k(_fb_change, _fb_i) '
      'where k._fb_i operator(pg_catalog.=) any($2) and ((k._fb_change->''d'')::boolean is true '
      'or exists (select from %I.%I t where %s))',
      rel_schema, rel_name, key_match);

    for group_item, group_no in
      select g.value, g.ordinality from pg_catalog.jsonb_array_elements(groups) with ordinality g
    loop
      role_name := group_item->>'role';
      wanted := array(
        select pg_catalog.jsonb_array_elements_text(
                 case when pg_catalog.jsonb_typeof(group_item->'changes') = 'array'
                      then group_item->'changes' else '[]' end)::integer);
      visible := null;
      failed := false;
      if not bypass ? role_name then
        bypass := bypass || pg_catalog.jsonb_build_object(role_name, coalesce(
          (select r.rolbypassrls from pg_catalog.pg_roles r where r.rolname = role_name), false));
      end if;
      if not rel_rls or (bypass->>role_name)::boolean then
        visible := wanted;
      else
        if not policy_queries ? role_name then
          -- The SELECT policies that apply to the role: permissive ones or-ed, restrictive
          -- ones and-ed; a policy without USING grants no reads.  None permissive: no row.
          select case when pg_catalog.count(*) filter (where p.polpermissive) > 0 then
                   pg_catalog.format(
                     'select pg_catalog.array_agg(k._fb_i::integer order by k._fb_i) '
                     'from pg_catalog.jsonb_array_elements($1) with ordinality as k(_fb_change, _fb_i) '
                     'cross join lateral pg_catalog.jsonb_populate_record(null::%I.%I, k._fb_change->''r'') as %I '
                     'where k._fb_i operator(pg_catalog.=) any($2) and (%s)%s',
                     rel_schema, rel_name, rel_name,
                     pg_catalog.string_agg(
                       '(' || coalesce(pg_catalog.pg_get_expr(p.polqual, p.polrelid), 'false') || ')', ' or '
                     ) filter (where p.polpermissive),
                     coalesce(pg_catalog.string_agg(
                       ' and (' || coalesce(pg_catalog.pg_get_expr(p.polqual, p.polrelid), 'false') || ')', ''
                     ) filter (where not p.polpermissive), ''))
                 end
            into policy_query
            from pg_catalog.pg_policy p
           where p.polrelid = target and p.polcmd in ('r', '*')
             and exists (
               select from pg_catalog.unnest(p.polroles) r
                where r operator(pg_catalog.=) 0 or pg_catalog.pg_has_role(role_name, r, 'member'));
          policy_queries := policy_queries || pg_catalog.jsonb_build_object(role_name, policy_query);
        end if;
        policy_query := policy_queries->>role_name;
        if policy_query is not null and wanted <> '{}' then
          begin
            perform pg_catalog.set_config('role', role_name, true),
                    pg_catalog.set_config('request.jwt.claims',
                                          coalesce(group_item->'claims', '{}')::text, true);
            execute policy_query into visible using changes, wanted;
            if visible is not null then
              execute live_query into visible using changes, visible;
            end if;
          exception when others then
            -- Rolled back to the start of this block: role and claims are undone too.
            failed := true;
          end;
        end if;
      end if;
      if failed then
        group_index := group_no; change_index := null;
        return next;
      elsif visible is not null then
        return query select group_no::integer, v from pg_catalog.unnest(visible) v;
      end if;
    end loop;
    perform pg_catalog.set_config('role', saved_role, true),
            pg_catalog.set_config('request.jwt.claims', coalesce(saved_claims, ''), true);
  end
  $$;
revoke all on function realtime.visible_changes(regclass, jsonb, jsonb) from public;

grant usage on schema realtime to authenticator;
grant execute on function
  realtime.enabled_tables(),
  realtime.horizon(),
  realtime.read_changes(pg_catalog.xid8, pg_catalog.xid8, bigint, integer),
  realtime.prune(interval),
  realtime.visible_changes(regclass, jsonb, jsonb)
  to authenticator;
