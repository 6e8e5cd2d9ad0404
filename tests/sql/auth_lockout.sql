-- pgTAP: lockout per account and source (auth.check_password, sign_in_lockout, unlock_user):
-- a failing source is locked out, the owner elsewhere is not; many sources start the
-- account's backoff, which known sources pass; locks grow, are visible, liftable and audited.
begin;
select plan(26);

select * from auth.sign_up('owner@example.org', 'right pw', '{}', 10, true) \gset owner_

-- Sign in once from the owner's usual place (B): B is known from now on.
select is((select outcome from auth.check_password('owner@example.org', 'right pw', '192.0.2.2', 3, 5,
  '10 minutes', '10 minutes', '1 hour')), 'ok', 'the owner signs in from B');

-- An attacker at A fails three times: A is locked out of this account, nobody else is.
select auth.check_password('owner@example.org', 'guess', '203.0.113.1', 3, 5, '10 minutes', '10 minutes', '1 hour')
  from generate_series(1, 2);
select is((select failed_attempts from auth.sign_in_sources where user_id = :'owner_user_id' and source = '203.0.113.1'),
  2, 'failures are counted per source');
select is((select lock_scope from auth.check_password('owner@example.org', 'guess', '203.0.113.1', 3, 5,
  '10 minutes', '10 minutes', '1 hour')), 'source', 'the third failure locks the source');
select is((select locked_until from auth.sign_in_sources where user_id = :'owner_user_id' and source = '203.0.113.1'),
  now() + interval '10 minutes', 'for the lockout time, not forever');
select is((select outcome from auth.check_password('owner@example.org', 'right pw', '203.0.113.1', 3, 5,
  '10 minutes', '10 minutes', '1 hour')), 'locked', 'the locked source is refused even the right password');
select is((select outcome from auth.check_password('owner@example.org', 'right pw', '192.0.2.2', 3, 5,
  '10 minutes', '10 minutes', '1 hour')), 'ok', 'the owner at B is not locked out');
select is((select outcome from auth.check_password('owner@example.org', 'right pw', '198.51.100.7', 3, 5,
  '10 minutes', '10 minutes', '1 hour')), 'ok', 'nor from a new place');
select ok(exists (select from audit.events where event = 'user_locked' and actor_id = :'owner_user_id'
                   and details ->> 'scope' = 'source' and ip = '203.0.113.1'), 'the lock writes an audit row');
select is((select locked_until from auth.users where id = :'owner_user_id'), null,
  'one source alone does not start the account backoff');

-- Ten minutes later (the lock and the failure window are over), the source's next lock lasts twice as long.
update auth.sign_in_sources set locked_until = now() - interval '1 second'
 where user_id = :'owner_user_id' and source = '203.0.113.1';
update auth.users set first_failed_sign_in_at = now() - interval '11 minutes' where id = :'owner_user_id';
select auth.check_password('owner@example.org', 'guess', '203.0.113.1', 3, 5, '10 minutes', '10 minutes', '1 hour')
  from generate_series(1, 3);
select results_eq($$select locked_until, lock_count from auth.sign_in_sources
                     where source = '203.0.113.1' and user_id = (select id from auth.users where email = 'owner@example.org')$$,
  $$values (now() + interval '20 minutes', 2)$$, 'the second lock of the source doubles');
select is(auth.lock_for('10 minutes', '1 hour', 30), interval '1 hour', 'growth stops at the maximum');

-- Many sources: their failures add up to the account's backoff (a new window again).
update auth.users set first_failed_sign_in_at = now() - interval '11 minutes' where id = :'owner_user_id';
select auth.check_password('owner@example.org', 'guess', ('198.18.0.' || n)::inet, 3, 5,
                           '10 minutes', '10 minutes', '1 hour')
  from generate_series(1, 5) n;
select ok((select locked_until = now() + interval '10 minutes' and lock_count = 1 from auth.users
            where id = :'owner_user_id'), 'failures from five sources start the account backoff');
select ok(exists (select from audit.events where event = 'user_locked' and actor_id = :'owner_user_id'
                   and details ->> 'scope' = 'account'), 'which is audited too');
select is((select outcome from auth.check_password('owner@example.org', 'right pw', '100.64.0.1', 3, 5,
  '10 minutes', '10 minutes', '1 hour')), 'locked', 'an unknown source is held back by the account backoff');
select is((select outcome from auth.check_password('owner@example.org', 'right pw', '192.0.2.2', 3, 5,
  '10 minutes', '10 minutes', '1 hour')), 'ok', 'a source the owner signed in from passes it');
select is((select outcome from auth.check_password('owner@example.org', 'right pw', null, 3, 5,
  '10 minutes', '10 minutes', '1 hour')), 'locked', 'an unknown source address counts as unknown');

-- Visible to the administrator.
select is((auth.sign_in_lockout(:'owner_user_id') ->> 'lock_count')::int, 1, 'sign_in_lockout shows the account lock');
select ok((auth.sign_in_lockout(:'owner_user_id') ->> 'locked_until') is not null, 'and until when');
select is((select s ->> 'lock_count' from jsonb_array_elements(auth.sign_in_lockout(:'owner_user_id') -> 'sources') s
            where s ->> 'source' = '203.0.113.1'), '2', 'and each locked source');
select is((select (s ->> 'known')::boolean from jsonb_array_elements(auth.sign_in_lockout(:'owner_user_id') -> 'sources') s
            where s ->> 'source' = '192.0.2.2'), true, 'and which sources are known');
select is(auth.sign_in_lockout(gen_random_uuid()), null, 'an unknown user has no lockout state');

-- Liftable: unlock_user ends every lock and the growth.
select ok(auth.unlock_user(:'owner_user_id', null, '192.0.2.99'), 'unlock_user lifts the locks');
select is((select outcome from auth.check_password('owner@example.org', 'right pw', '203.0.113.1', 3, 5,
  '10 minutes', '10 minutes', '1 hour')), 'ok', 'the once-locked source may sign in again');
select results_eq($$select (auth.sign_in_lockout(id) ->> 'lock_count')::int, auth.sign_in_lockout(id) ->> 'locked_until'
                      from auth.users where email = 'owner@example.org'$$,
  $$values (0, null::text)$$, 'and the account backoff is gone, its growth reset');

-- Privileges: the admin API calls these as service_role; no other API role may.
select ok(has_function_privilege('service_role', 'auth.sign_in_lockout(uuid)', 'execute')
          and has_function_privilege('service_role', 'auth.unlock_user(uuid, uuid, inet)', 'execute'),
  'service_role may read and lift locks');
select ok(not has_function_privilege('anon', 'auth.sign_in_lockout(uuid)', 'execute')
          and not has_function_privilege('authenticated', 'auth.unlock_user(uuid, uuid, inet)', 'execute'),
  'anon and authenticated may not');

select * from finish();
rollback;
