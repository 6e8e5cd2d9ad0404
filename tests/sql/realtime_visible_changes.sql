-- pgTAP: realtime.visible_changes decides who sees a change -- event, filter, column grants,
-- policies -- for many subscriber groups in one call, each in its own role and claims, and cannot
-- be used to switch into anything but the API roles.  The suite's database uses an ICU
-- collation (tests/integration/test_pgtap.py), so text filters are compared as PostgreSQL does.
begin;
select plan(21);

create table public.rt_notes (id int primary key, owner uuid not null, body text, secret text);
alter table public.rt_notes enable row level security;
create policy rt_own on public.rt_notes for select to authenticated using (owner = auth.uid());
grant select (id, owner, body) on public.rt_notes to authenticated;
grant select on public.rt_notes to service_role;
insert into public.rt_notes values
  (1, '00000000-0000-0000-0000-00000000000a', 'a', 's'),
  (2, '00000000-0000-0000-0000-00000000000b', 'b', 's');

create function pg_temp.changes() returns jsonb language sql as $$
  select '[{"t": "INSERT", "r": {"id": 1, "owner": "00000000-0000-0000-0000-00000000000a", "body": "a"}},
           {"t": "UPDATE", "r": {"id": 2, "owner": "00000000-0000-0000-0000-00000000000b", "body": "b"}},
           {"t": "INSERT", "r": {"id": 3, "owner": "00000000-0000-0000-0000-00000000000a", "body": "c"}},
           {"t": "DELETE", "r": {"id": 9, "owner": "00000000-0000-0000-0000-00000000000b"}}]'::jsonb
$$;
create function pg_temp.run(filters jsonb, groups jsonb) returns setof record language sql as $$
  select group_index, change_index, binding_index
    from realtime.visible_changes('public.rt_notes', pg_temp.changes(), filters, groups)
   where change_index is not null
$$;

select results_eq(
  $$select * from pg_temp.run('[{"c": []}]',
    '[{"role": "authenticated", "claims": {"sub": "00000000-0000-0000-0000-00000000000a"}, "b": [{"f": 1, "e": "*"}]},
      {"role": "authenticated", "claims": {"sub": "00000000-0000-0000-0000-00000000000b"}, "b": [{"f": 1, "e": "*"}]},
      {"role": "anon", "claims": {}, "b": [{"f": 1, "e": "*"}]},
      {"role": "service_role", "claims": {}, "b": [{"f": 1, "e": "UPDATE"}, {"f": 1, "e": "INSERT"}]}]')
    as (g integer, c integer, b integer) order by 1, 2, 3$$,
  $$values (1, 1, 1), (1, 3, 1), (2, 2, 1), (2, 4, 1), (4, 1, 2), (4, 2, 1), (4, 3, 2)$$,
  'each group sees its own rows; a row gone by now (3) is sent as written, a DELETE passes on the policy; '
  'service_role bypasses RLS and gets each change on the binding of its event; no grant for anon');

select results_eq(
  $$select g, cols from realtime.visible_changes('public.rt_notes', pg_temp.changes(), '[{"c": []}]',
    '[{"role": "authenticated", "claims": {"sub": "00000000-0000-0000-0000-00000000000a"}, "b": [{"f": 1, "e": "*"}]},
      {"role": "service_role", "claims": {}, "b": [{"f": 1, "e": "*"}]}]') as v(g, c, b, cols)
    where c is null order by 1$$,
  $$values (1, '{id,owner,body}'::text[]), (2, '{id,owner,body,secret}'::text[])$$,
  'each group learns the columns its role may select');

select is(current_user::text, session_user::text, 'the role is put back afterwards');
select is(current_setting('request.jwt.claims', true), '', 'the claims are put back afterwards');

-- Filters: evaluated in SQL with the column's type, once per filter, shared by the groups.
select results_eq(
  $$select * from pg_temp.run(
    '[{"c": [{"col": "id", "op": "gte", "v": "2"}]},
      {"c": [{"col": "body", "op": "in", "vs": ["a", "c"]}]},
      {"c": [{"col": "id", "op": "eq", "not": true, "v": "2"}, {"col": "body", "op": "is", "v": "not_null"}]},
      {"c": [{"col": "id", "op": "lt", "v": "10"}]}]',
    '[{"role": "service_role", "claims": {}, "b": [{"f": 1, "e": "*"}, {"f": 2, "e": "*"}, {"f": 3, "e": "*"}, {"f": 4, "e": "DELETE"}]}]')
    as (g integer, c integer, b integer) order by 1, 2, 3$$,
  $$values (1, 1, 2), (1, 1, 3), (1, 2, 1), (1, 3, 1), (1, 3, 2), (1, 3, 3), (1, 4, 1), (1, 4, 4)$$,
  'filters: gte on an int column, in, not.eq and is, an event per binding');

select results_eq(
  $$select * from pg_temp.run('[{"c": [{"col": "secret", "op": "eq", "v": "s"}]}]',
    '[{"role": "authenticated", "claims": {"sub": "00000000-0000-0000-0000-00000000000a"}, "b": [{"f": 1, "e": "*"}]}]')
    as (g integer, c integer, b integer)$$,
  $$select 1, 1, 1 where false$$,
  'a filter on a column the role may not select matches nothing');

-- Text filters compare with the column's collation: under ICU 'é' < 'f' and 'b' < 'B'.
create table public.rt_words (id int primary key, word text, c_word text collate "C");
grant select on public.rt_words to service_role;
select results_eq(
  $$select change_index, binding_index from realtime.visible_changes('public.rt_words',
      '[{"t": "INSERT", "r": {"id": 1, "word": "é", "c_word": "é"}},
        {"t": "INSERT", "r": {"id": 2, "word": "B", "c_word": "B"}}]',
      '[{"c": [{"col": "word", "op": "lt", "v": "f"}]}, {"c": [{"col": "word", "op": "gt", "v": "b"}]},
        {"c": [{"col": "c_word", "op": "lt", "v": "f"}]}, {"c": [{"col": "c_word", "op": "gt", "v": "b"}]}]',
      '[{"role": "service_role", "claims": {}, "b": [{"f": 1, "e": "*"}, {"f": 2, "e": "*"}, {"f": 3, "e": "*"}, {"f": 4, "e": "*"}]}]')
     where change_index is not null order by 1, 2$$,
  $$values (1, 1), (1, 2), (1, 4), (2, 1), (2, 2), (2, 3)$$,
  'lt/gt on text follow the column collation: ICU for word, C for c_word');
select is(
  (select array_agg(id order by id) from (values (1, 'é'), (2, 'B')) v(id, w) where w < 'f' and w > 'b'),
  '{1,2}'::int[], 'the same comparisons in a plain query (the data API''s) agree');

-- A filter that no longer fits (a value that does not convert) fails alone.
select results_eq(
  $$select * from pg_temp.run(
    '[{"c": [{"col": "id", "op": "eq", "v": "x"}]}, {"c": [{"col": "id", "op": "eq", "v": "1"}]}]',
    '[{"role": "service_role", "claims": {}, "b": [{"f": 1, "e": "*"}, {"f": 2, "e": "*"}]}]')
    as (g integer, c integer, b integer)$$,
  $$values (1, 1, 2)$$,
  'a failing filter matches nothing, the others of its shape still match');

select throws_ok(
  $$select * from realtime.visible_changes('public.rt_notes', '[]', '[]', '[{"role": "postgres", "b": []}]')$$,
  '22023', null, 'a role other than the API roles is refused');
select throws_ok(
  $$select * from realtime.visible_changes('public.rt_notes', '[]', '[]', '[{"b": []}]')$$,
  '22023', null, 'a group without a role is refused');

-- A group whose check fails (a claim that is not a uuid) gets (group, null); the others go on.
select results_eq(
  $$select group_index, change_index from realtime.visible_changes('public.rt_notes', pg_temp.changes(),
    '[{"c": []}]',
    '[{"role": "authenticated", "claims": {"sub": "not-a-uuid"}, "b": [{"f": 1, "e": "INSERT"}]},
      {"role": "authenticated", "claims": {"sub": "00000000-0000-0000-0000-00000000000a"}, "b": [{"f": 1, "e": "INSERT"}]}]')
     where columns is null$$,
  $$values (1, null::integer), (2, 1), (2, 3)$$,
  'a failing group fails closed alone');

-- Identifiers that need quoting, a composite primary key.
create table public."odd ""name""" ("Key" int, "k2" text, body text, primary key ("Key", k2));
alter table public."odd ""name""" enable row level security;
create policy odd_read on public."odd ""name""" for select to authenticated using (body = 'open');
grant select on public."odd ""name""" to authenticated;
insert into public."odd ""name""" values (1, 'x', 'open'), (2, 'y', 'closed');
select results_eq(
  $$select change_index from realtime.visible_changes('public."odd ""name"""',
    '[{"t": "INSERT", "r": {"Key": 1, "k2": "x", "body": "open"}}, {"t": "INSERT", "r": {"Key": 2, "k2": "y", "body": "closed"}},
      {"t": "UPDATE", "r": {"Key": 2, "k2": "y", "body": "open"}}]',
    '[{"c": [{"col": "Key", "op": "gt", "v": "0"}]}]',
    '[{"role": "authenticated", "claims": {}, "b": [{"f": 1, "e": "*"}]}]') where change_index is not null$$,
  $$values (1), (3)$$,
  'quoted identifiers and composite keys; each version is checked as it was written, not as it is now');

-- check_binding: what a join is refused for.
select is(realtime.check_binding('public.rt_notes', 'authenticated', '{"c": [{"col": "body", "op": "lt", "v": "x"}]}', null),
  null, 'a fitting filter is accepted');
select is(realtime.check_binding('public.rt_notes', 'authenticated', '{"c": [{"col": "nope", "op": "eq", "v": "1"}]}', null),
  'invalid filter: invalid column for filter nope', 'an unknown column is refused');
select is(realtime.check_binding('public.rt_notes', 'authenticated', '{"c": [{"col": "secret", "op": "eq", "v": "1"}]}', null),
  'invalid filter: permission denied for a filtered column', 'a column the role may not select is refused');
select is(realtime.check_binding('public.rt_notes', 'authenticated', '{"c": []}', '{id,secret}'),
  'select: permission denied for a column, or no such column', 'select is checked against the grants');
select matches(realtime.check_binding('public.rt_notes', 'service_role', '{"c": [{"col": "id", "op": "in", "vs": ["1", "x"]}]}', null),
  '^invalid filter: invalid input syntax for type integer', 'a value that does not convert is refused');
select matches(realtime.check_binding('public.rt_notes', 'service_role', '{"c": [{"col": "id", "op": "is", "v": "true"}]}', null),
  '^invalid filter: .*boolean', 'an operator the type has no meaning for is refused');

-- Only authenticator (and superusers) may execute it.
select ok(has_function_privilege('authenticator', 'realtime.visible_changes(regclass, jsonb, jsonb, jsonb)', 'execute'),
  'authenticator may execute it');
select ok(not has_function_privilege('anon', 'realtime.visible_changes(regclass, jsonb, jsonb, jsonb)', 'execute')
       and not has_function_privilege('authenticated', 'realtime.visible_changes(regclass, jsonb, jsonb, jsonb)', 'execute')
       and not has_function_privilege('service_role', 'realtime.visible_changes(regclass, jsonb, jsonb, jsonb)', 'execute')
       and not has_function_privilege('anon', 'realtime.check_binding(regclass, text, jsonb, text[])', 'execute'),
  'the API roles may not');

select * from finish();
rollback;
