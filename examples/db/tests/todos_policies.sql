-- Policy tests for the todos example, run by `fluxbase test` (pgTAP, through pg_prove).
-- Each test file runs in a transaction that is rolled back: nothing it writes stays.
begin;
select plan(7);

select tests.create_user('ada@example.com');
select tests.create_user('bob@example.com');

select tests.authenticate_as('ada@example.com');
select lives_ok(
  $$insert into public.todos (task) values ('Ada''s todo')$$,
  'a user adds a todo (user_id comes from the token)');
select results_eq('select task from public.todos', array['Ada''s todo'], 'a user reads only their own todos');

select tests.authenticate_as('bob@example.com');
select is_empty('select * from public.todos', 'another user sees none of them');
select throws_ok(
  $$insert into public.todos (user_id, task) values (tests.user_id('ada@example.com'), 'forged')$$,
  '42501', null, 'a user cannot add a todo for someone else');
update public.todos set is_complete = true;
select tests.authenticate_as('ada@example.com');
select results_eq('select is_complete from public.todos', array[false], 'nor change someone else''s');

select tests.as_anon();
select is_empty('select * from public.todos', 'anon gets no rows');

select tests.as_service_role();
select ok((select count(*) from public.todos) >= 2, 'service_role sees every row, the seed row included');

select * from finish();
rollback;
