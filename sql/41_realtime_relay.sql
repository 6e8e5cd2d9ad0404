-- Realtime additions beside sql/40_realtime.sql: TRUNCATE capture for tables
-- enabled before it existed, who may hear of a truncate, and the relay of
-- broadcast/presence messages too large for a NOTIFY payload.  Re-applied by
-- every `fluxbase migrate`: every statement is idempotent.

-- Tables enabled before TRUNCATE was captured get their statement trigger.
do $truncate_triggers$
declare
  target regclass;
begin
  for target in
    select t.tgrelid::pg_catalog.regclass
      from pg_catalog.pg_trigger t
     where t.tgname = 'fluxbase_realtime'
       and t.tgfoid = 'realtime.capture()'::pg_catalog.regprocedure
       and not exists (
         select from pg_catalog.pg_trigger u
          where u.tgrelid = t.tgrelid and u.tgname = 'fluxbase_realtime_truncate'
       )
  loop
    execute pg_catalog.format(
      'create trigger fluxbase_realtime_truncate after truncate on %s '
      'for each statement execute function realtime.capture()',
      target
    );
  end loop;
end
$truncate_triggers$;

-- Of `roles`, those that hear of a truncate of `target`: the ones that may
-- select its primary key columns (as for any change of the table: without the
-- key a role sees nothing of it).  Row-level security has nothing to decide:
-- the event carries no row.
create or replace function realtime.truncate_audience(target regclass, roles text[])
  returns setof text
  language sql stable
  set search_path = ''
  as $$
    select r.role
      from pg_catalog.unnest(roles) as r(role)
     where exists (select from pg_catalog.pg_roles p where p.rolname = r.role)
       and exists (select from pg_catalog.pg_index i where i.indrelid = target and i.indisprimary)
       and not exists (
         select
           from pg_catalog.pg_index i
           join pg_catalog.pg_attribute a on a.attrelid = i.indrelid and a.attnum = any(i.indkey)
          where i.indrelid = target and i.indisprimary
            and not pg_catalog.has_column_privilege(r.role, target, a.attnum, 'SELECT')
       )
  $$;
revoke all on function realtime.truncate_audience(regclass, text[]) from public;

-- A message too large for NOTIFY: stored, and only its id announced on the
-- channel every replica listens to.  Rows older than a minute are gone by the
-- next call (every replica has read them by then, or was not listening).
create or replace function realtime.relay_put(message text) returns bigint
  language plpgsql
  security definer
  set search_path = ''
  as $$
  declare
    new_id bigint;
  begin
    delete from realtime.relay where created_at < pg_catalog.now() - interval '1 minute';
    insert into realtime.relay (message) values (message) returning id into new_id;
    perform pg_catalog.pg_notify(
      'fluxbase_broadcast', pg_catalog.jsonb_build_object('k', 'relay', 'id', new_id)::text
    );
    return new_id;
  end
  $$;
revoke all on function realtime.relay_put(text) from public;

create or replace function realtime.relay_get(relay_id bigint) returns text
  language sql stable
  security definer
  set search_path = ''
  as $$ select r.message from realtime.relay r where r.id = relay_id $$;
revoke all on function realtime.relay_get(bigint) from public;

grant execute on function
  realtime.truncate_audience(regclass, text[]),
  realtime.relay_put(text),
  realtime.relay_get(bigint)
  to authenticator;
