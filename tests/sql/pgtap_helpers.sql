-- pgTAP: the tests.* helpers that `fluxbase test` installs in its throwaway copies act as the
-- server's callers do (role and request.jwt.claims, transaction-local), and switch back and forth.
begin;
select plan(13);

\ir ../../testing/pgtap_helpers.sql

create table public.th_notes (id int primary key, owner uuid not null default auth.uid(), body text);
alter table public.th_notes enable row level security;
create policy th_own on public.th_notes for all to authenticated
  using (owner = auth.uid()) with check (owner = auth.uid());
grant select, insert on public.th_notes to authenticated;

select isa_ok(tests.create_user('Ada@Example.com', '{"name": "Ada"}'), 'uuid', 'create_user returns the id');
select is((select email_confirmed_at is not null from auth.users where email = 'Ada@Example.com'), true,
  'the user is confirmed');
select tests.create_user('bob@example.com');

select tests.authenticate_as('ada@example.com');
select is(current_user::text, 'authenticated', 'authenticate_as switches to authenticated');
select is(auth.uid(), tests.user_id('ada@example.com'), 'with the user''s id as auth.uid() (email in any case)');
select is(auth.jwt() -> 'user_metadata' ->> 'name', 'Ada', 'and the claims of its access token');
insert into public.th_notes (id, body) values (1, 'ada''s');

select tests.authenticate_as(tests.user_id('bob@example.com'));
select is_empty('select * from public.th_notes', 'by id too: another user sees nothing of Ada''s');
select tests.authenticate_as(tests.user_id('bob@example.com')::text);
select is(auth.email(), 'bob@example.com', 'and by an id written as text');

select tests.as_anon();
select is(current_user::text, 'anon', 'as_anon');
select throws_ok('select * from public.th_notes', '42501', null, 'anon has no grant here');

select tests.as_service_role();
select results_eq('select body from public.th_notes', array['ada''s'], 'as_service_role bypasses RLS');

select tests.clear_authentication();
select is(auth.uid(), null, 'clear_authentication: no claims');
select is(current_user, session_user, 'and the owner again');

select throws_ok($$select tests.authenticate_as('nobody@example.com')$$, 'P0001',
  'tests: no user with email nobody@example.com', 'an unknown user is an error, not anon');

select * from finish();
rollback;
