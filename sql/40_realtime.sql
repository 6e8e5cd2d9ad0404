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

-- Runs as its owner so that writers need no privilege on realtime.log.  Also the
-- statement-level AFTER TRUNCATE trigger: one row with no record (a truncate
-- reveals no row data).
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
    execute pg_catalog.format('drop trigger if exists fluxbase_realtime_truncate on %s', target);
    execute pg_catalog.format(
      'create trigger fluxbase_realtime after insert or update or delete on %s '
      'for each row execute function realtime.capture()',
      target
    );
    execute pg_catalog.format(
      'create trigger fluxbase_realtime_truncate after truncate on %s '
      'for each statement execute function realtime.capture()',
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
    execute pg_catalog.format('drop trigger if exists fluxbase_realtime_truncate on %s', target);
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

-- The SQL of one postgres_changes filter, as the data API writes the same filter: each
-- condition compares the column `_fb_r.<column>` (so with the column's own collation) with the
-- filter value cast to the column's type, `(value::text)::<format_type>` exactly as /rest/v1
-- casts it, so a channel and the data API answer the same filter with the same rows.
-- `conditions` is a JSON array of {"col", "op", "not", "v"} ({"vs": [...]} for `in`); the values
-- are never pasted in: the SQL reads them from `source`, an expression (of the caller's query)
-- that yields that same array, so one text serves every filter of the same shape.  Column names
-- go through format('%I') after a catalog lookup; an unknown column or operator raises.
create or replace function realtime.filter_sql(target regclass, conditions jsonb, source text)
  returns text
  language plpgsql stable
  set search_path = ''
  as $$
  declare
    item jsonb;
    at integer := 0;
    parts text[] := '{}';
    column_type text;
    column_ref text;
    value_ref text;
    expression text;
  begin
    for item in select c.value from pg_catalog.jsonb_array_elements(conditions) c loop
      select pg_catalog.format_type(a.atttypid, a.atttypmod) into column_type
        from pg_catalog.pg_attribute a
       where a.attrelid = target and a.attname = (item->>'col') and a.attnum > 0 and not a.attisdropped;
      if column_type is null then
        raise exception 'invalid column for filter %', item->>'col' using errcode = 'undefined_column';
      end if;
      column_ref := pg_catalog.format('_fb_r.%I', item->>'col');
      value_ref := pg_catalog.format('((%s)->%s->>''v'')', source, at);
      expression := case item->>'op'
        when 'eq' then pg_catalog.format('%s = (%s)::%s', column_ref, value_ref, column_type)
        when 'neq' then pg_catalog.format('%s <> (%s)::%s', column_ref, value_ref, column_type)
        when 'lt' then pg_catalog.format('%s < (%s)::%s', column_ref, value_ref, column_type)
        when 'lte' then pg_catalog.format('%s <= (%s)::%s', column_ref, value_ref, column_type)
        when 'gt' then pg_catalog.format('%s > (%s)::%s', column_ref, value_ref, column_type)
        when 'gte' then pg_catalog.format('%s >= (%s)::%s', column_ref, value_ref, column_type)
        when 'isdistinct' then
          pg_catalog.format('%s is distinct from (%s)::%s', column_ref, value_ref, column_type)
        when 'like' then pg_catalog.format('%s like %s', column_ref, value_ref)
        when 'ilike' then pg_catalog.format('%s ilike %s', column_ref, value_ref)
        when 'in' then pg_catalog.format(
          '%s = any((array(select pg_catalog.jsonb_array_elements_text((%s)->%s->''vs'')))::%s[])',
          column_ref, source, at, column_type)
        when 'is' then column_ref || case item->>'v'
          when 'null' then ' is null'
          when 'not_null' then ' is not null'
          when 'true' then ' is true'
          when 'false' then ' is false'
          when 'unknown' then ' is unknown'
        end
      end;
      if expression is null then
        raise exception 'unsupported filter operator %', item->>'op' using errcode = 'invalid_parameter_value';
      end if;
      if (item->>'not')::boolean then
        expression := 'not (' || expression || ')';
      end if;
      parts := parts || expression;
      at := at + 1;
    end loop;
    return coalesce(nullif(pg_catalog.array_to_string(parts, ' and '), ''), 'true');
  end
  $$;
revoke all on function realtime.filter_sql(regclass, jsonb, text) from public;

-- Whether one postgres_changes binding can be accepted, asked when a channel joins: null when
-- it can, else a message for the subscriber.  The role must be able to select every filtered
-- column (filtering on a column one may not read leaks it bit by bit, `like 'a%'`) and every
-- `select` column; each value must convert to its column's type and each operator must exist
-- for it, which PostgreSQL decides by running the filter over no row and casting each value.
create or replace function realtime.check_binding(
  target regclass, role_name text, filter jsonb, select_columns text[]
) returns text
  language plpgsql
  volatile
  as $$
  declare
    rel_schema text;
    rel_name text;
    item jsonb;
    value text;
    column_type text;
  begin
    if role_name is null or role_name not in ('anon', 'authenticated', 'service_role') then
      raise exception 'realtime.check_binding: not an API role' using errcode = 'invalid_parameter_value';
    end if;
    select n.nspname::text, c.relname::text into rel_schema, rel_name
      from pg_catalog.pg_class c join pg_catalog.pg_namespace n on n.oid = c.relnamespace
     where c.oid = target;
    select x->>'col' into value
      from pg_catalog.jsonb_array_elements(filter->'c') x
     where not exists (
       select from pg_catalog.pg_attribute a
        where a.attrelid = target and a.attname = (x->>'col') and a.attnum > 0 and not a.attisdropped)
     limit 1;
    if value is not null then
      return pg_catalog.format('invalid filter: invalid column for filter %s', value);
    end if;
    if exists (
      select from pg_catalog.jsonb_array_elements(filter->'c') x
       join pg_catalog.pg_attribute a on a.attrelid = target and a.attname = (x->>'col')
       where not pg_catalog.has_column_privilege(role_name, target, a.attnum, 'SELECT')
    ) then
      return 'invalid filter: permission denied for a filtered column';
    end if;
    if exists (
      select from pg_catalog.unnest(select_columns) s(name)
       where not exists (
         select from pg_catalog.pg_attribute a
          where a.attrelid = target and a.attname = s.name and a.attnum > 0 and not a.attisdropped
            and pg_catalog.has_column_privilege(role_name, target, a.attnum, 'SELECT'))
    ) then
      return 'select: permission denied for a column, or no such column';
    end if;
    begin
      -- Planned (operators resolved) but run over no row.
      execute pg_catalog.format(
        'select from pg_catalog.jsonb_populate_record(null::%I.%I, null) _fb_r where %s and false',
        rel_schema, rel_name, realtime.filter_sql(target, filter->'c', '$1'))
        using filter->'c';
      -- A pattern is checked by matching it against itself, which walks it to its end: a
      -- trailing escape is an error in PostgreSQL, raised only when the matcher reaches it.
      perform (x.value->>'v') like (x.value->>'v')
         from pg_catalog.jsonb_array_elements(filter->'c') x where x.value->>'op' in ('like', 'ilike');
      for item in select x.value from pg_catalog.jsonb_array_elements(filter->'c') x
                   where x.value->>'op' not in ('is', 'like', 'ilike') loop
        select pg_catalog.format_type(a.atttypid, a.atttypmod) into column_type
          from pg_catalog.pg_attribute a where a.attrelid = target and a.attname = (item->>'col');
        for value in
          select item->>'v' where item->>'op' <> 'in'
          union all
          select pg_catalog.jsonb_array_elements_text(item->'vs') where item->>'op' = 'in'
        loop
          execute pg_catalog.format('select ($1::text)::%s', column_type) using value;
        end loop;
      end loop;
    exception when others then
      return 'invalid filter: ' || sqlerrm;
    end;
    return null;
  end
  $$;
revoke all on function realtime.check_binding(regclass, text, jsonb, text[]) from public;

-- The bulk path's policy: the SELECT policies that apply to `role_name` on `target` (permissive
-- ones or-ed, restrictive ones and-ed, as RLS combines them), with every call of a claim helper
-- replaced by a column of the joined relation of groups `_fb_g` (claims_text, jwt, uid, role,
-- email), so one statement evaluates them for every group of a batch.  NULL when that cannot
-- be proved equivalent to evaluating them with each group's claims set, which sends the role
-- to the per-group path.  Proof, conservatively:
--  * the helpers are the ones the migrations define (same bodies, SQL, no SET, not definer), so
--    what they return is a function of the claims alone, written out in the bulk statement;
--  * every object a policy depends on (pg_depend records each function, operator, type and
--    relation an expression uses, subqueries included) is: the table; a plain table without
--    RLS; a claim helper; current_setting('request.jwt.claims'); a built-in immutable function;
--    a built-in operator over a built-in immutable or stable function; a built-in or enum
--    type; a collation.  Built-in objects are not in pg_depend, so the parsed expressions are
--    scanned too (every funcid, opfuncid, aggfnoid, winfnoid and relid).  A user function (it
--    may read the claims itself), a volatile or other stable function, a view, a table with
--    RLS of its own, a domain, a row comparison: not provable, NULL;
--  * each helper call is replaced textually in the printed expression (search_path empty, so
--    printed schema-qualified), and the number of replacements must equal the number of calls
--    in the parsed policies (pg_node_tree), so no string literal or identifier is touched;
--  * the table and its columns do not use the `_fb_` prefix the bulk statement's names use.
-- SECURITY DEFINER: it reads the catalog and the helpers' definitions in `auth`, which
-- authenticator may not use; it runs nothing of the policies.
create or replace function realtime.claims_policy(target regclass, role_name text)
  returns text
  language plpgsql stable
  security definer
  set search_path = ''
  as $$
  declare
    uid_fn oid := pg_catalog.to_regprocedure('auth.uid()');
    jwt_fn oid := pg_catalog.to_regprocedure('auth.jwt()');
    role_fn oid := pg_catalog.to_regprocedure('auth.role()');
    email_fn oid := pg_catalog.to_regprocedure('auth.email()');
    setting_fns oid[] := array[pg_catalog.to_regprocedure('pg_catalog.current_setting(text)'),
                               pg_catalog.to_regprocedure('pg_catalog.current_setting(text, boolean)')];
    policies oid[];
    trees text;
    expression text;
    replaced text;
    helper record;
    calls integer;
    found_calls integer;
    boundary constant text := '(?<![[:alnum:]_."$])';
  begin
    if uid_fn is null or jwt_fn is null or role_fn is null or email_fn is null then
      return null;
    end if;
    if exists (
      select from pg_catalog.pg_proc f
       where f.oid in (uid_fn, jwt_fn, role_fn, email_fn)
         and (f.prosecdef or f.proconfig is not null or f.proretset
              or f.prolang is distinct from (select l.oid from pg_catalog.pg_language l where l.lanname = 'sql')
              or pg_catalog.regexp_replace(pg_catalog.btrim(f.prosrc, E' \n\t'), '\s+', ' ', 'g') is distinct from
                 case f.oid
                   when jwt_fn then 'select coalesce(nullif(pg_catalog.current_setting(''request.jwt.claims'', true), ''''), ''{}'')::jsonb'
                   when uid_fn then 'select nullif(auth.jwt() ->> ''sub'', '''')::uuid'
                   when role_fn then 'select auth.jwt() ->> ''role'''
                   when email_fn then 'select auth.jwt() ->> ''email'''
                 end)
    ) then
      return null;
    end if;
    if exists (
      select from pg_catalog.pg_class c where c.oid = target and c.relname::text like '\_fb\_%'
      union all
      select from pg_catalog.pg_attribute a
       where a.attrelid = target and a.attnum > 0 and a.attname::text like '\_fb\_%'
    ) then
      return null;
    end if;

    select pg_catalog.array_agg(p.oid),
           pg_catalog.string_agg(coalesce(p.polqual::text, ''), ' '),
           case when pg_catalog.count(*) filter (where p.polpermissive) > 0 then
             '((' || pg_catalog.string_agg(
                       '(' || coalesce(pg_catalog.pg_get_expr(p.polqual, p.polrelid), 'false') || ')', ' or ')
                       filter (where p.polpermissive) || ')'
             || coalesce(pg_catalog.string_agg(
                       ' and (' || coalesce(pg_catalog.pg_get_expr(p.polqual, p.polrelid), 'false') || ')', '')
                       filter (where not p.polpermissive), '')
             || ')'
           end
      into policies, trees, expression
      from pg_catalog.pg_policy p
     where p.polrelid = target and p.polcmd in ('r', '*')
       and exists (
         select from pg_catalog.unnest(p.polroles) r
          where r operator(pg_catalog.=) 0 or pg_catalog.pg_has_role(role_name, r, 'member'));
    if expression is null then
      return 'false';  -- no permissive policy: no row is visible, whatever the claims
    end if;

    if exists (
      select from pg_catalog.pg_depend d
       where d.classid = 'pg_catalog.pg_policy'::pg_catalog.regclass
         and d.objid operator(pg_catalog.=) any(policies)
         and not coalesce(case d.refclassid
           when 'pg_catalog.pg_class'::pg_catalog.regclass then
             d.refobjid = target or exists (
               select from pg_catalog.pg_class c
                where c.oid = d.refobjid and c.relkind in ('r', 'p') and not c.relrowsecurity)
           when 'pg_catalog.pg_proc'::pg_catalog.regclass then
             d.refobjid in (uid_fn, jwt_fn, role_fn, email_fn)
             or d.refobjid operator(pg_catalog.=) any(setting_fns)
             or exists (
               select from pg_catalog.pg_proc f
                where f.oid = d.refobjid and f.oid < 16384 and f.provolatile = 'i')
           when 'pg_catalog.pg_operator'::pg_catalog.regclass then
             exists (
               select from pg_catalog.pg_operator o join pg_catalog.pg_proc f on f.oid = o.oprcode
                where o.oid = d.refobjid and o.oid < 16384 and f.oid < 16384 and f.provolatile in ('i', 's'))
           when 'pg_catalog.pg_type'::pg_catalog.regclass then
             d.refobjid < 16384 or exists (
               select from pg_catalog.pg_type t where t.oid = d.refobjid and t.typtype = 'e')
           when 'pg_catalog.pg_collation'::pg_catalog.regclass then true
           else false
         end, false)
    ) then
      return null;
    end if;

    -- Built-in objects are pinned and never appear in pg_depend: every function, operator
    -- function, aggregate and relation named in the parsed policies is checked here as well.
    if trees ~ '\{ROWCOMPARE' or exists (
      select from pg_catalog.regexp_matches(trees, ':(funcid|opfuncid|aggfnoid|winfnoid) (\d+)', 'g') m
        left join pg_catalog.pg_proc f on f.oid = m[2]::oid
       where not coalesce(
               f.oid in (uid_fn, jwt_fn, role_fn, email_fn)
               or f.oid operator(pg_catalog.=) any(setting_fns)
               or (f.oid < 16384 and (f.provolatile = 'i' or (m[1] = 'opfuncid' and f.provolatile = 's'))),
               false)
      union all
      select from pg_catalog.regexp_matches(trees, ':relid (\d+)', 'g') m
        left join pg_catalog.pg_class c on c.oid = m[1]::oid
       where not coalesce(c.oid = target or (c.relkind in ('r', 'p') and not c.relrowsecurity), false)
    ) then
      return null;
    end if;

    replaced := expression;
    for helper in
      select * from (values
        (array[uid_fn], 'auth\.uid\(\)', '_fb_g.uid'),
        (array[jwt_fn], 'auth\.jwt\(\)', '_fb_g.jwt'),
        (array[role_fn], 'auth\.role\(\)', '_fb_g.role'),
        (array[email_fn], 'auth\.email\(\)', '_fb_g.email'),
        (setting_fns, 'current_setting\(''request\.jwt\.claims''::text(, (true|false))?\)', '_fb_g.claims_text')
      ) h(fns, pattern, replacement)
    loop
      select pg_catalog.count(*) into calls
        from pg_catalog.unnest(helper.fns) f(fn),
             pg_catalog.regexp_matches(trees, '\{FUNCEXPR :funcid ' || f.fn::text || ' ', 'g');
      select pg_catalog.count(*) into found_calls
        from pg_catalog.regexp_matches(replaced, boundary || helper.pattern, 'g');
      if calls <> found_calls then
        return null;
      end if;
      replaced := pg_catalog.regexp_replace(replaced, boundary || helper.pattern, helper.replacement, 'g');
    end loop;
    return replaced;
  end
  $$;
revoke all on function realtime.claims_policy(regclass, text) from public;

-- Who sees which change of one table: the one place that decides it, for every subscriber
-- group of a batch in ONE statement (the way Supabase's realtime.apply_rls works).
--
-- `changes`: JSON array of {"t": INSERT|UPDATE|DELETE, "r": the written row (the old one for a
-- DELETE)}.  `filters`: JSON array of {"c": [conditions]} (see realtime.filter_sql), each
-- distinct filter once.  `groups`: JSON array of {"role": API role, "claims": {...},
-- "b": [{"f": filter index, "e": event or "*"}, ...]}, a group's distinct bindings.  Indexes
-- are 1-based.  Returns, per group that may see anything, one row (group, null, null, the
-- columns its role may select) and one row (group, change, binding) per binding a visible
-- change matched; (group, null, null, null) for a group whose check failed (it receives
-- nothing: failing closed, without taking the other groups down).
--
-- A change reaches a binding when, in this order:
--  * its type is the binding's event, and the filter matches the record: evaluated by
--    PostgreSQL, once per filter and batch, as the data API evaluates the same filter
--    (realtime.filter_sql); filters of the same shape share one statement, their values
--    read from the joined `filters` rows; a filter that fails (a column retyped since the
--    join) matches nothing;
--  * the group's role may select the primary key and every column the filter reads
--    (grants revoked after the join count at once);
--  * under RLS, unless the role bypasses it: the record passes the role's SELECT policies as it
--    was written (the old row for a DELETE).  Only the logged version decides: a subscriber who
--    could read that version gets the event even if the row changed or vanished before delivery
--    (an insert quickly followed by a delete delivers both), and values from before a
--    visibility change (a row moved from one owner to another) never reach the new reader.
-- For the policy check the function switches, transaction-locally, to the group's role and
-- claims; they are put back as they were before returning.
--
-- SECURITY INVOKER on purpose: SET ROLE is refused inside security-definer functions, and
-- a role switch is only allowed to roles the session user (authenticator) is a member of.
-- Only authenticator may execute it, and it only switches into the three API roles.  No SET
-- search_path: policy expressions are printed (pg_get_expr) and evaluated, and filter operators
-- resolved, under the caller's search_path, as on /rest/v1; the function's own references are
-- schema-qualified.  Identifiers come from the catalog through format('%I'), types from
-- format_type(), values are bound (EXECUTE ... USING).
drop function if exists realtime.visible_changes(regclass, jsonb, jsonb);
create or replace function realtime.visible_changes(
  target regclass, changes jsonb, filters jsonb, groups jsonb
) returns table (group_index integer, change_index integer, binding_index integer, columns text[])
  language plpgsql
  volatile
  as $$
  declare
    rel_schema text;
    rel_name text;
    rel_rls boolean;
    key_match text;
    key_columns text[];
    saved_role text := pg_catalog.current_setting('role');
    saved_claims text := pg_catalog.current_setting('request.jwt.claims', true);
    matches jsonb := '{}';         -- filter index -> [change indexes it matches]
    policy_queries jsonb := '{}';  -- role -> its policy query, or JSON null: no row visible
    role_bypass boolean;
    shape_sql text;
    shape_filters jsonb;
    one_filter jsonb;
    found_matches jsonb;
    policy_query text;
    group_item jsonb;
    group_no bigint;
    role_name text;
    role_cols text[];
    pair_changes integer[];
    pair_bindings integer[];
    change_types text[];
    wanted integer[];
    visible integer[];
    failed boolean;
    pending jsonb;                 -- [role, group index, bypass, changes, bindings] per group
    role_columns jsonb;            -- role -> the columns it may select
    bulk_groups jsonb;
    bulk_policy text;
    found_groups integer[];
    found_changes integer[];
    seen_groups integer[] := '{}'; -- (group, change) pairs the bulk path found visible,
    seen_changes integer[] := '{}';--   as two parallel arrays
    bulk_roles text[] := '{}';     -- roles the bulk path decided
  begin
    if pg_catalog.jsonb_typeof(groups) is distinct from 'array'
       or pg_catalog.jsonb_typeof(changes) is distinct from 'array'
       or pg_catalog.jsonb_typeof(filters) is distinct from 'array' then
      raise exception 'realtime.visible_changes: changes, filters and groups must be JSON arrays'
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
             ' and ' order by a.attnum),
           pg_catalog.array_agg(a.attname::text)
      into key_match, key_columns
      from pg_catalog.pg_index i
      join pg_catalog.pg_attribute a on a.attrelid = i.indrelid and a.attnum operator(pg_catalog.=) any(i.indkey)
     where i.indrelid = target and i.indisprimary;
    if rel_name is null or key_match is null then
      return;  -- no such table, or no primary key: no change can be checked, none is visible
    end if;

    -- Filters, one statement per shape (the same columns, operators and negations): the
    -- values come from the joined filter rows, never from the SQL text.
    for shape_filters in
      select pg_catalog.jsonb_agg(pg_catalog.jsonb_build_object('i', f.ordinality, 'c', f.value->'c'))
        from pg_catalog.jsonb_array_elements(filters) with ordinality f
       group by (select pg_catalog.jsonb_agg(pg_catalog.jsonb_build_array(
                          x->'col', x->'op', x->'not', case when x->>'op' = 'is' then x->'v' end))
                   from pg_catalog.jsonb_array_elements(f.value->'c') x)
    loop
      begin
        shape_sql := pg_catalog.format(
          'select pg_catalog.jsonb_object_agg(m.i, m.cs) from ('
          'select f.value->>''i'' as i, pg_catalog.jsonb_agg(k._fb_i order by k._fb_i) as cs '
          'from pg_catalog.jsonb_array_elements($2) f '
          'cross join pg_catalog.jsonb_array_elements($1) with ordinality as k(_fb_change, _fb_i) '
          'cross join lateral pg_catalog.jsonb_populate_record(null::%I.%I, k._fb_change->''r'') as _fb_r '
          'where %s group by 1) m',
          rel_schema, rel_name, realtime.filter_sql(target, shape_filters->0->'c', 'f.value->''c'''));
        execute shape_sql into found_matches using changes, shape_filters;
        matches := matches || coalesce(found_matches, '{}');
      exception when others then
        -- One filter that no longer fits the table (or a record that does not) must not take
        -- the others of its shape down: each alone, the failing ones matching nothing.
        for one_filter in select s.value from pg_catalog.jsonb_array_elements(shape_filters) s loop
          begin
            execute shape_sql into found_matches using changes, pg_catalog.jsonb_build_array(one_filter);
            matches := matches || coalesce(found_matches, '{}');
          exception when others then
            null;
          end;
        end loop;
      end;
    end loop;

    -- Every group at once: its role's selectable columns and RLS bypass, and its (change,
    -- binding) pairs -- the event fits, the filter matched, the role may select the filter's
    -- columns (grants revoked after the join count at once).  Without the key columns a role
    -- sees no row of the table; a group without any pair is skipped.
    change_types := array(select c->>'t' from pg_catalog.jsonb_array_elements(changes) c);
    -- Each entry stays small (no copy of the group, its claims or its role's columns, which
    -- are read from `groups` and role_columns when needed): building and re-reading it per
    -- group was a large share of the call with thousands of groups.
    with role_views as (
      select r.name,
             coalesce((select o.rolbypassrls from pg_catalog.pg_roles o where o.rolname = r.name), false)
               as bypass,
             array(select a.attname::text from pg_catalog.pg_attribute a
                    where a.attrelid = target and a.attnum > 0 and not a.attisdropped
                      and pg_catalog.has_column_privilege(r.name, target, a.attnum, 'SELECT')
                    order by a.attnum) as cols
        from (select distinct e->>'role' as name from pg_catalog.jsonb_array_elements(groups) e) r
    ),
    -- Per filter and role: whether the role may select every column the filter reads.
    readable as (
      select v.name, pg_catalog.array_agg(f.ordinality::text) as filters
        from role_views v
        cross join pg_catalog.jsonb_array_elements(filters) with ordinality f
       where array(select x->>'col' from pg_catalog.jsonb_array_elements(f.value->'c') x)
             operator(pg_catalog.<@) v.cols
       group by v.name
    ),
    pending_groups as (
      select v.name as role, g.ordinality as no, v.bypass, p.cs, p.bs
        from pg_catalog.jsonb_array_elements(groups) with ordinality g
        join role_views v on v.name = g.value->>'role'
        join readable r on r.name = v.name
        cross join lateral (
          select pg_catalog.array_agg(c.i) as cs, pg_catalog.array_agg(b.ordinality::integer) as bs
            from pg_catalog.jsonb_array_elements(
                   case when pg_catalog.jsonb_typeof(g.value->'b') = 'array' then g.value->'b' else '[]' end
                 ) with ordinality b
            cross join lateral pg_catalog.jsonb_array_elements_text(matches->(b.value->>'f')) as m(v)
            cross join lateral (select m.v::integer as i) c
           where (b.value->>'e' = '*' or b.value->>'e' = change_types[c.i])
             and (b.value->>'f') operator(pg_catalog.=) any(r.filters)
        ) p
       where key_columns operator(pg_catalog.<@) v.cols and p.cs is not null
    )
    select coalesce(pg_catalog.jsonb_agg(
             pg_catalog.jsonb_build_array(q.role, q.no, q.bypass, q.cs, q.bs) order by q.no), '[]'),
           (select pg_catalog.jsonb_object_agg(v.name, v.cols) from role_views v)
      into pending, role_columns
      from pending_groups q;

    -- The bulk path: for each role under RLS whose policies depend on the caller only through
    -- the claim helpers (realtime.claims_policy), every group of the role in ONE statement,
    -- the claims taken from a joined relation of groups: the logged record (the row as it was
    -- written, like the per-group path) passes the policies.  A role it cannot prove, or whose
    -- statement fails (fail closed), takes the per-group path below.  Setting
    -- fluxbase.realtime_bulk to 'off' turns it off (the equivalence test compares both).
    if rel_rls and coalesce(pg_catalog.current_setting('fluxbase.realtime_bulk', true), '') <> 'off' then
      for role_name, bulk_groups in
        select e->>0,
               pg_catalog.jsonb_agg(pg_catalog.jsonb_build_object(
                 'i', e->1, 'c', coalesce(groups->((e->>1)::integer - 1)->'claims', '{}'), 'w', e->3))
          from pg_catalog.jsonb_array_elements(pending) e
         where not (e->>2)::boolean
         group by 1
      loop
        begin
          bulk_policy := realtime.claims_policy(target, role_name);
          continue when bulk_policy is null;
          perform pg_catalog.set_config('role', role_name, true),
                  pg_catalog.set_config('request.jwt.claims', '', true);
          execute pg_catalog.format(
            'with _fb_groups as materialized ('
            ' select (_fb_x.value->>''i'')::integer as i,'
            '  array(select pg_catalog.jsonb_array_elements_text(_fb_x.value->''w'')::integer) as w,'
            '  _fb_t.claims_text, _fb_t.jwt,'
            '  nullif(_fb_t.jwt->>''sub'', '''')::pg_catalog.uuid as uid,'
            '  _fb_t.jwt->>''role'' as role, _fb_t.jwt->>''email'' as email'
            ' from pg_catalog.jsonb_array_elements($2) _fb_x'
            -- auth.jwt() parses the setting's text; the text of a jsonb value is never '' and
            -- parses back to that same value, so the claims are taken as they are, not re-parsed.
            ' cross join lateral (select _fb_c.claims::text as claims_text, _fb_c.claims as jwt'
            '   from (select coalesce(_fb_x.value->''c'', ''{}''::pg_catalog.jsonb) as claims) _fb_c) _fb_t'
            ') '
            'select pg_catalog.array_agg(_fb_g.i), pg_catalog.array_agg(_fb_k._fb_i::integer)'
            ' from _fb_groups _fb_g'
            ' join pg_catalog.jsonb_array_elements($1) with ordinality as _fb_k(_fb_change, _fb_i)'
            '   on _fb_k._fb_i::integer operator(pg_catalog.=) any(_fb_g.w)'
            ' where exists (select from pg_catalog.jsonb_populate_record(null::%1$I.%2$I, _fb_k._fb_change->''r'') as %2$I'
            '               where %3$s)',
            rel_schema, rel_name, bulk_policy)
            into found_groups, found_changes using changes, bulk_groups;
          -- Kept apart until the statement succeeded: a failing role adds nothing here.
          seen_groups := seen_groups || coalesce(found_groups, '{}');
          seen_changes := seen_changes || coalesce(found_changes, '{}');
          bulk_roles := pg_catalog.array_append(bulk_roles, role_name);
          perform pg_catalog.set_config('role', saved_role, true);
        exception when others then
          null;  -- rolled back, role included: this role's groups take the per-group path
        end;
      end loop;
    end if;

    -- Groups decided without the loop, in ONE statement: without RLS or bypassing it, a group
    -- sees every (change, binding) pair it asked for; a group of a bulk-decided role sees the
    -- pairs whose change the bulk statement found visible for it, and nothing (not even its
    -- head row) when there is none -- exactly what the loop below answers for the others.
    return query
      with decided as (
        select (e->>1)::integer as g, role_columns->(e->>0) as cols, e->3 as cs, e->4 as bs,
               not rel_rls or (e->>2)::boolean as all_pairs
          from pg_catalog.jsonb_array_elements(pending) e
         where not rel_rls or (e->>2)::boolean or (e->>0) operator(pg_catalog.=) any(bulk_roles)
      ),
      seen as (
        select distinct s.g, s.c
          from rows from (pg_catalog.unnest(seen_groups), pg_catalog.unnest(seen_changes)) s(g, c)
      ),
      shown as (
        select d.g, p.c::integer as c, p.b::integer as b
          from decided d
          cross join lateral rows from (
            pg_catalog.jsonb_array_elements_text(d.cs), pg_catalog.jsonb_array_elements_text(d.bs)) p(c, b)
         -- IN over an uncorrelated subquery: a hashed lookup, not a scan per pair.
         where d.all_pairs or (d.g, p.c::integer) in (select s.g, s.c from seen s)
      )
      select d.g, null::integer, null::integer,
             array(select x.value from pg_catalog.jsonb_array_elements_text(d.cols) with ordinality x
                    order by x.ordinality)
        from decided d
       where d.g in (select h.g from shown h)
      union all
      select h.g, h.c, h.b, null::text[] from shown h;

    -- The per-group path: each group of a role the bulk path could not decide.
    for group_item, group_no, role_bypass, role_cols, pair_changes, pair_bindings in
      select groups->((e->>1)::integer - 1), (e->>1)::bigint, (e->>2)::boolean,
             array(select x.value from pg_catalog.jsonb_array_elements_text(role_columns->(e->>0)) with ordinality x
                    order by x.ordinality),
             array(select x.value::integer from pg_catalog.jsonb_array_elements_text(e->3) with ordinality x
                    order by x.ordinality),
             array(select x.value::integer from pg_catalog.jsonb_array_elements_text(e->4) with ordinality x
                    order by x.ordinality)
        from pg_catalog.jsonb_array_elements(pending) e
       where rel_rls and not (e->>2)::boolean
         and not (e->>0) operator(pg_catalog.=) any(bulk_roles)
    loop
      role_name := group_item->>'role';
      -- One binding (the common case): its changes are distinct and in order already.
      if pg_catalog.jsonb_array_length(group_item->'b') = 1 then
        wanted := pair_changes;
      else
        wanted := array(select distinct w from pg_catalog.unnest(pair_changes) w order by w);
      end if;
      visible := null;
      failed := false;
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
      if policy_query is not null then
        begin
          perform pg_catalog.set_config('role', role_name, true),
                  pg_catalog.set_config('request.jwt.claims',
                                        coalesce(group_item->'claims', '{}')::text, true);
          execute policy_query into visible using changes, wanted;
        exception when others then
          -- Rolled back to the start of this block: role and claims are undone too.
          failed := true;
        end;
      end if;
      if failed then
        group_index := group_no; change_index := null; binding_index := null; columns := null;
        return next;
      elsif visible is not null then
        group_index := group_no; change_index := null; binding_index := null; columns := role_cols;
        return next;
        if pg_catalog.cardinality(pair_changes) = 1 then
          -- The common case, one change and one binding: no query needed.
          change_index := pair_changes[1]; binding_index := pair_bindings[1]; columns := null;
          return next;
        elsif visible = wanted then
          return query
            select group_no::integer, p.c, p.b, null::text[]
              from rows from (pg_catalog.unnest(pair_changes), pg_catalog.unnest(pair_bindings)) p(c, b);
        else
          return query
            select group_no::integer, p.c, p.b, null::text[]
              from rows from (pg_catalog.unnest(pair_changes), pg_catalog.unnest(pair_bindings)) p(c, b)
             where p.c operator(pg_catalog.=) any(visible);
        end if;
      end if;
    end loop;
    perform pg_catalog.set_config('role', saved_role, true),
            pg_catalog.set_config('request.jwt.claims', coalesce(saved_claims, ''), true);
  end
  $$;
revoke all on function realtime.visible_changes(regclass, jsonb, jsonb, jsonb) from public;

grant usage on schema realtime to authenticator;
grant execute on function
  realtime.enabled_tables(),
  realtime.horizon(),
  realtime.read_changes(pg_catalog.xid8, pg_catalog.xid8, bigint, integer),
  realtime.prune(interval),
  realtime.filter_sql(regclass, jsonb, text),
  realtime.check_binding(regclass, text, jsonb, text[]),
  realtime.visible_changes(regclass, jsonb, jsonb, jsonb),
  realtime.claims_policy(regclass, text)
  to authenticator;
