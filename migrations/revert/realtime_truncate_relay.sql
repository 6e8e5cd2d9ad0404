-- Revert fluxbase:realtime_truncate_relay from pg

BEGIN;

-- The truncate triggers of enabled tables would write rows the old constraint refuses.
do $triggers$
declare
  target regclass;
begin
  for target in
    select t.tgrelid::pg_catalog.regclass from pg_catalog.pg_trigger t
     where t.tgname = 'fluxbase_realtime_truncate'
  loop
    execute pg_catalog.format('drop trigger fluxbase_realtime_truncate on %s', target);
  end loop;
end
$triggers$;

drop function if exists realtime.relay_put(text);
drop function if exists realtime.relay_get(bigint);
drop function if exists realtime.truncate_audience(regclass, text[]);
drop table realtime.relay;
delete from realtime.log where type = 'TRUNCATE';
alter table realtime.log drop constraint log_type_is_a_change;
alter table realtime.log add constraint log_type_is_a_change
  check (type in ('INSERT', 'UPDATE', 'DELETE'));

COMMIT;
