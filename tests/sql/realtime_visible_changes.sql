-- pgTAP: realtime.visible_changes checks many subscriber groups in one call, each in its own
-- role and claims, and cannot be used to switch into anything but the API roles.
begin;
select plan(11);

create table public.rt_notes (id int primary key, owner uuid not null, body text);
alter table public.rt_notes enable row level security;
create policy rt_own on public.rt_notes for select to authenticated using (owner = auth.uid());
grant select on public.rt_notes to authenticated, service_role;
insert into public.rt_notes values
  (1, '00000000-0000-0000-0000-00000000000a', 'a'),
  (2, '00000000-0000-0000-0000-00000000000b', 'b');

create function pg_temp.changes() returns jsonb language sql as $$
  select '[{"r": {"id": 1, "owner": "00000000-0000-0000-0000-00000000000a"}},
           {"r": {"id": 2, "owner": "00000000-0000-0000-0000-00000000000b"}},
           {"r": {"id": 3, "owner": "00000000-0000-0000-0000-00000000000a"}},
           {"r": {"id": 9, "owner": "00000000-0000-0000-0000-00000000000b"}, "d": true}]'::jsonb
$$;

select results_eq(
  $$select group_index, change_index from realtime.visible_changes('public.rt_notes', pg_temp.changes(),
    '[{"role": "authenticated", "claims": {"sub": "00000000-0000-0000-0000-00000000000a"}, "changes": [1, 2, 3, 4]},
      {"role": "authenticated", "claims": {"sub": "00000000-0000-0000-0000-00000000000b"}, "changes": [1, 2, 3, 4]},
      {"role": "anon", "claims": {}, "changes": [1, 2]},
      {"role": "service_role", "claims": {}, "changes": [2, 3]},
      {"role": "authenticated", "claims": {"sub": "00000000-0000-0000-0000-00000000000b"}, "changes": [1, 3]}]')
    order by 1, 2$$,
  $$values (1, 1), (2, 2), (2, 4), (4, 2), (4, 3)$$,
  'each group sees its own rows; a row gone (3) is not sent, a DELETE passes on the policy; '
  'service_role bypasses RLS; no policy for anon means nothing');

select is(current_user::text, session_user::text, 'the role is put back afterwards');
select is(current_setting('request.jwt.claims', true), '', 'the claims are put back afterwards');

select throws_ok(
  $$select * from realtime.visible_changes('public.rt_notes', '[]', '[{"role": "postgres", "changes": []}]')$$,
  '22023', null, 'a role other than the API roles is refused');
select throws_ok(
  $$select * from realtime.visible_changes('public.rt_notes', '[]', '[{"changes": []}]')$$,
  '22023', null, 'a group without a role is refused');

-- A group whose check fails (a claim that is not a uuid) gets (group, null); the others go on.
select results_eq(
  $$select group_index, change_index from realtime.visible_changes('public.rt_notes', pg_temp.changes(),
    '[{"role": "authenticated", "claims": {"sub": "not-a-uuid"}, "changes": [1]},
      {"role": "authenticated", "claims": {"sub": "00000000-0000-0000-0000-00000000000a"}, "changes": [1]}]')$$,
  $$values (1, null::integer), (2, 1)$$,
  'a failing group fails closed alone');

-- Identifiers that need quoting, a composite primary key.
create table public."odd ""name""" ("Key" int, "k2" text, body text, primary key ("Key", k2));
alter table public."odd ""name""" enable row level security;
create policy odd_read on public."odd ""name""" for select to authenticated using (body = 'open');
grant select on public."odd ""name""" to authenticated;
insert into public."odd ""name""" values (1, 'x', 'open'), (2, 'y', 'closed');
select results_eq(
  $$select change_index from realtime.visible_changes('public."odd ""name"""',
    '[{"r": {"Key": 1, "k2": "x", "body": "open"}}, {"r": {"Key": 2, "k2": "y", "body": "closed"}},
      {"r": {"Key": 2, "k2": "y", "body": "open"}}]',
    '[{"role": "authenticated", "claims": {}, "changes": [1, 2, 3]}]')$$,
  $$values (1)$$,
  'quoted identifiers and composite keys; the live row is re-read under RLS');

-- Only authenticator (and superusers) may execute it.
select ok(has_function_privilege('authenticator', 'realtime.visible_changes(regclass, jsonb, jsonb)', 'execute'),
  'authenticator may execute it');
select ok(not has_function_privilege('anon', 'realtime.visible_changes(regclass, jsonb, jsonb)', 'execute'),
  'anon may not');
select ok(not has_function_privilege('authenticated', 'realtime.visible_changes(regclass, jsonb, jsonb)', 'execute'),
  'authenticated may not');
select ok(not has_function_privilege('service_role', 'realtime.visible_changes(regclass, jsonb, jsonb)', 'execute'),
  'service_role may not');

select * from finish();
rollback;
