-- pgTAP: audit trails by trigger -- enable/disable, what a row change records (actor, API key,
-- request id, primary key, whole rows or changed columns only), reading with filters, pruning,
-- and who may do what.
begin;
select plan(29);

truncate audit.record_changes;
create table public.au_items (a int, b text, note text, primary key (a, b));
create table public.au_log (line text);  -- no primary key
grant select, insert, update, delete on public.au_items, public.au_log to authenticated;
create view public.au_view as select * from public.au_items;

select lives_ok($$select audit.enable_tracking('public.au_items')$$, 'the owner enables tracking on a table');
select lives_ok($$select audit.enable_tracking('public.au_log', changed_columns_only => true)$$,
  'with changed columns only');
select lives_ok($$select audit.enable_tracking('public.au_items')$$, 'enabling twice is harmless');
select has_trigger('public', 'au_items', 'fluxbase_audit', 'a row trigger is installed');
select results_eq(
  $$select schema_name || '.' || table_name, changed_columns_only from audit.tracked_tables()
     where table_name like 'au\_%' order by 1$$,
  $$values ('public.au_items', false), ('public.au_log', true)$$,
  'tracked_tables() reads the triggers');
select throws_ok($$select audit.enable_tracking('public.au_view')$$, '42809', null, 'a view cannot be tracked');
select throws_ok($$select audit.enable_tracking('audit.record_changes')$$, '22023', null,
  'the trail cannot track itself');

-- As the server does at the start of a request's transaction.
select set_config('request.jwt.claims',
  '{"sub": "00000000-0000-0000-0000-00000000000a", "role": "authenticated", "api_key_id": "key-1"}', true),
  set_config('request.id', 'req-1', true);
set local role authenticated;
insert into public.au_items values (1, 'x', 'first');
update public.au_items set note = 'second' where a = 1;
delete from public.au_items where a = 1;
insert into public.au_log values ('one');
update public.au_log set line = 'two';
reset role;

select results_eq(
  $$select op, record_id, actor_id, actor_role, api_key_id, request_id from audit.record_changes
     where table_name = 'au_items' order by id$$,
  $$values ('INSERT', '{"a": 1, "b": "x"}'::jsonb, '00000000-0000-0000-0000-00000000000a'::uuid,
            'authenticated', 'key-1', 'req-1'),
           ('UPDATE', '{"a": 1, "b": "x"}', '00000000-0000-0000-0000-00000000000a', 'authenticated', 'key-1', 'req-1'),
           ('DELETE', '{"a": 1, "b": "x"}', '00000000-0000-0000-0000-00000000000a', 'authenticated', 'key-1', 'req-1')$$,
  'each change records operation, primary key, actor, API key id and request id');
select results_eq(
  $$select record, old_record from audit.record_changes where table_name = 'au_items' order by id$$,
  $$values ('{"a": 1, "b": "x", "note": "first"}'::jsonb, null::jsonb),
           ('{"a": 1, "b": "x", "note": "second"}', '{"a": 1, "b": "x", "note": "first"}'),
           (null, '{"a": 1, "b": "x", "note": "second"}')$$,
  'whole rows: new for INSERT and UPDATE, old for UPDATE and DELETE');
select results_eq(
  $$select record, old_record, record_id from audit.record_changes where table_name = 'au_log' order by id$$,
  $$values ('{"line": "one"}'::jsonb, null::jsonb, null::jsonb), ('{"line": "two"}', '{"line": "one"}', null)$$,
  'changed columns only for an UPDATE; no primary key, no record_id');
create table public.au_single (id int primary key, v text);
select audit.enable_tracking('public.au_single');
insert into public.au_single values (7, 'seven');
select is((select record_id from audit.record_changes where table_name = 'au_single'), '{"id": 7}'::jsonb,
  'a one-column key is recorded alike');
select is((select table_oid from audit.record_changes limit 1), 'public.au_items'::regclass::oid,
  'the table''s oid is kept next to its name');

-- The owner in psql: no claims, so the role that wrote.
select set_config('request.jwt.claims', '', true), set_config('request.id', '', true);
insert into public.au_items values (2, 'y', 'by the DBA');
select results_eq(
  $$select actor_id, actor_role = session_user, api_key_id, request_id from audit.record_changes
     where record ->> 'note' = 'by the DBA'$$,
  $$values (null::uuid, true, null::text, null::text)$$,
  'a change outside any request names the database role');

-- The service_role key: the rate limiter's key id.
select set_config('request.jwt.claims', '{"role": "service_role"}', true);
set local role service_role;
insert into public.au_items values (3, 'z', 'by the admin');
reset role;
select is((select api_key_id from audit.record_changes where record ->> 'note' = 'by the admin'), 'service_role',
  'the service_role key is named as the rate limiter names it');
select set_config('request.jwt.claims', '', true);

truncate public.au_items;
select is((select count(*)::int from audit.record_changes where op = 'TRUNCATE' and table_name = 'au_items'), 1,
  'a TRUNCATE is recorded');

select lives_ok($$select audit.disable_tracking('public.au_items')$$, 'tracking is disabled');
insert into public.au_items values (4, 'w', 'not tracked');
select is((select count(*)::int from audit.record_changes where record ->> 'note' = 'not tracked'), 0,
  'a table no longer tracked records nothing');
select hasnt_trigger('public', 'au_items', 'fluxbase_audit', 'its trigger is gone');

-- A change rolled back with its transaction leaves no trail.
savepoint before_failure;
insert into public.au_log values ('rolled back');
rollback to savepoint before_failure;
select is((select count(*)::int from audit.record_changes where record ->> 'line' = 'rolled back'), 0,
  'a rolled back change leaves nothing');

-- Reading: service_role (and the server for dashboard administrators) only.
set local role anon;
select throws_ok('select * from audit.record_changes', '42501', null, 'anon cannot read the table');
select throws_ok('select * from audit.read_record_changes()', '42501', null, 'nor call the reader');
reset role;
set local role authenticated;
select throws_ok('select * from audit.record_changes', '42501', null, 'authenticated cannot read the table');
select throws_ok('select * from audit.read_record_changes()', '42501', null, 'nor call the reader');
select throws_ok($$select audit.prune_record_changes('1 day')$$, '42501', null, 'nor prune');
reset role;
set local role service_role;
select throws_ok('select * from audit.record_changes', '42501', null, 'service_role reads only through the function');
select results_eq(
  $$select op from audit.read_record_changes('public', 'au_items', op => 'delete')$$,
  array['DELETE'], 'the reader filters by table and operation (case-insensitive)');
select results_eq(
  $$select count(*)::int from audit.read_record_changes(request_id => 'req-1', max_rows => 2)$$,
  array[2], 'by request id, at most max_rows');
select results_eq(
  $$select r.op from audit.read_record_changes(before_id => (select min(id) + 1 from audit.read_record_changes())) r$$,
  array['INSERT'], 'pages by before_id, newest first');
reset role;

update audit.record_changes set at = now() - interval '40 days' where table_name = 'au_log';
select is(audit.prune_record_changes('30 days'), 2::bigint, 'pruning deletes the changes past the retention');

select * from finish();
rollback;
