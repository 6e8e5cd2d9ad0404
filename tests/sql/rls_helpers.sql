-- pgTAP: a policy written the Supabase way works under the role switch the server performs.
begin;
select plan(5);

create table public.notes (id int primary key, owner uuid not null, body text);
alter table public.notes enable row level security;
create policy own on public.notes for all to authenticated
  using (owner = auth.uid()) with check (owner = auth.uid());
grant select, insert on public.notes to authenticated;
insert into public.notes values
  (1, '00000000-0000-0000-0000-00000000000a', 'mine'),
  (2, '00000000-0000-0000-0000-00000000000b', 'theirs');

-- What the server does at the start of every request transaction.
select set_config('role', 'authenticated', true),
       set_config('request.jwt.claims', '{"sub": "00000000-0000-0000-0000-00000000000a", "role": "authenticated"}', true);

select results_eq('select body from public.notes', array['mine'], 'a user reads only their own rows');
select throws_ok(
  $$insert into public.notes values (3, '00000000-0000-0000-0000-00000000000b', 'forged')$$,
  '42501', null, 'a user cannot write a row for someone else');
select lives_ok(
  $$insert into public.notes values (4, '00000000-0000-0000-0000-00000000000a', 'new')$$,
  'a user writes their own row');

select set_config('role', 'anon', true);
select throws_ok('select * from public.notes', '42501', null, 'anon has no grant on the table');

-- Default privileges give service_role what the owner creates in public; it bypasses RLS.
select set_config('role', 'service_role', true);
select results_eq('select count(*)::int from public.notes', array[3], 'service_role reads every row');

select * from finish();
rollback;
