-- pgTAP: sign-up, bcrypt hashing and the password check (its lockout: auth_lockout.sql).
begin;
select plan(27);

-- Sign up.
select * from auth.sign_up('Ada@Example.org', 'correct horse', '{"name": "Ada"}', 10, true, '192.0.2.1') \gset ada_
select ok(:'ada_created'::boolean, 'sign_up creates a user');
select is((select email from auth.users where id = :'ada_user_id'), 'ada@example.org', 'the address is stored in lower case');
select matches((select encrypted_password from auth.users where id = :'ada_user_id'), '^\$2a\$10\$.{53}$',
  'the password is stored as bcrypt with the requested cost');
select is((select extensions.crypt('correct horse', encrypted_password) = encrypted_password from auth.users where id = :'ada_user_id'),
  true, 'the stored hash verifies the password');
select is((select provider from auth.identities where user_id = :'ada_user_id'), 'email', 'an email identity is created');
select is((select raw_app_meta_data from auth.users where id = :'ada_user_id'),
  '{"provider": "email", "providers": ["email"]}'::jsonb, 'app_metadata names the provider');

-- Signing up again with a taken address: nothing created, nothing changed.
select * from auth.sign_up('ADA@example.org ', 'another password', '{"name": "Mallory"}', 10, true) \gset again_
select ok(not :'again_created'::boolean, 'a taken address creates nothing');
select is(:'again_user_id'::uuid, :'ada_user_id'::uuid, 'and names the existing account to the server');
select is((select count(*)::int from auth.users where lower(email) = 'ada@example.org'), 1, 'one account per address');
select is((select raw_user_meta_data ->> 'name' from auth.users where id = :'ada_user_id'), 'Ada', 'metadata is not overwritten');
select is((select outcome from auth.check_password('ada@example.org', 'another password')), 'invalid_credentials',
  'the password is not overwritten');

-- bcrypt cost floor and length limit.
select throws_ok($$select auth.sign_up('low@example.org', 'pw', '{}', 9, true)$$, '22023', null,
  'a bcrypt cost below 10 is refused');
select throws_ok($$select auth.hash_password('pw', 4)$$, '22023', null, 'hash_password refuses cost 4');
select matches(auth.hash_password('pw', 11), '^\$2a\$11\$', 'a higher cost is honoured');
select throws_ok($$select auth.hash_password(repeat('x', 73), 10)$$, '22023', null,
  'a password bcrypt would truncate is refused');
select throws_ok($$insert into auth.users (email, encrypted_password) values ('plain@example.org', 'hunter2')$$,
  '23514', null, 'the table refuses a password that is not a bcrypt hash');

-- The password check.
select results_eq($$select user_id, outcome from auth.check_password('ada@example.org', 'correct horse', '192.0.2.1')$$,
  format('values (%L::uuid, %L)', :'ada_user_id', 'ok'), 'the right password: ok and the user id');
select results_eq($$select user_id, outcome from auth.check_password(' ADA@EXAMPLE.ORG', 'correct horse')$$,
  format('values (%L::uuid, %L)', :'ada_user_id', 'ok'), 'the address is matched whatever its case');
select results_eq($$select user_id, outcome from auth.check_password('ada@example.org', 'wrong')$$,
  $$values (null::uuid, 'invalid_credentials')$$, 'a wrong password: invalid_credentials, no id');
select results_eq($$select user_id, outcome from auth.check_password('nobody@example.org', 'wrong')$$,
  $$values (null::uuid, 'invalid_credentials')$$, 'an unknown address: the same answer');

select * from auth.sign_up('unconfirmed@example.org', 'pw 1234', '{}', 10, false) \gset unc_
select is((select outcome from auth.check_password('unconfirmed@example.org', 'pw 1234')), 'email_not_confirmed',
  'an unconfirmed address is reported only after the right password');
select is((select outcome from auth.check_password('unconfirmed@example.org', 'nope')), 'invalid_credentials',
  'and not with a wrong one');

-- Hashes imported from Supabase/GoTrue ($2a$) or other bcrypt libraries ($2b$, $2y$).
insert into auth.users (email, encrypted_password, email_confirmed_at) values
  ('imported-2a@example.org', '$2a$05$CCCCCCCCCCCCCCCCCCCCC.E5YPO9kmyuRGyh0XouQYb4YMJKvyOeW', now()),
  ('imported-2b@example.org', '$2b$05$CCCCCCCCCCCCCCCCCCCCC.E5YPO9kmyuRGyh0XouQYb4YMJKvyOeW', now()),
  ('imported-2y@example.org', '$2y$05$CCCCCCCCCCCCCCCCCCCCC.E5YPO9kmyuRGyh0XouQYb4YMJKvyOeW', now());
select is((select outcome from auth.check_password('imported-2a@example.org', 'U*U')), 'ok', 'an imported $2a$ hash verifies');
select is((select outcome from auth.check_password('imported-2b@example.org', 'U*U')), 'ok', 'an imported $2b$ hash verifies');
select is((select outcome from auth.check_password('imported-2y@example.org', 'U*U')), 'ok', 'an imported $2y$ hash verifies');
select is((select outcome from auth.check_password('imported-2b@example.org', 'U*V')), 'invalid_credentials',
  'and refuses a wrong password');

-- Lockout per account and source: tests/sql/auth_lockout.sql.
select throws_ok($$select auth.check_password('lock@example.org', 'x', null, 0)$$, '22023', null,
  'a lockout needs at least one failure');

select * from finish();
rollback;
