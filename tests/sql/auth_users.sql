-- pgTAP: one-time tokens, what users and administrators may change, and
-- who may reach the auth tables and functions at all.
begin;
select plan(48);

select * from auth.sign_up('cy@example.org', 'cy password', '{"name": "Cy"}', 10, false) \gset cy_

-- One-time tokens: stored hashed, single use, with an expiry.
select auth.issue_one_time_token(:'cy_user_id', 'confirmation', 'cy@example.org', '1 hour') as confirm_token \gset
select is((select count(*)::int from auth.one_time_tokens where token_hash = :'confirm_token'), 0,
  'a one-time token is not stored in plaintext');
select is((select token_hash from auth.one_time_tokens where user_id = :'cy_user_id' and token_type = 'confirmation'),
  auth.token_hash(:'confirm_token'), 'only its sha256 is');
select isnt((select confirmation_sent_at from auth.users where id = :'cy_user_id'), null, 'confirmation_sent_at is set');
select is((select error from auth.verify_one_time_token(:'confirm_token', 'recovery')), 'otp_expired',
  'a token of another type is refused');
select results_eq(format($$select user_id, error from auth.verify_one_time_token(%L, 'confirmation')$$, :'confirm_token'),
  format('values (%L::uuid, null::text)', :'cy_user_id'), 'the confirmation token verifies');
select isnt((select email_confirmed_at from auth.users where id = :'cy_user_id'), null, 'and confirms the address');
select is((select error from auth.verify_one_time_token(:'confirm_token', 'confirmation')), 'otp_expired',
  'a token works once');

select auth.issue_one_time_token(:'cy_user_id', 'magic_link', 'cy@example.org', '1 hour') as old_link \gset
select auth.issue_one_time_token(:'cy_user_id', 'magic_link', 'cy@example.org', '1 hour') as new_link \gset
select is((select error from auth.verify_one_time_token(:'old_link', 'magic_link')), 'otp_expired',
  'a newer token of the same type replaces the older one');
update auth.one_time_tokens set created_at = now() - interval '2 hours', expires_at = now() - interval '1 second'
 where token_hash = auth.token_hash(:'new_link');
select is((select error from auth.verify_one_time_token(:'new_link', 'magic_link')), 'otp_expired',
  'an expired token is refused');
select throws_ok(format($$select auth.issue_one_time_token(%L, 'recovery', 'cy@example.org', '0 seconds')$$, :'cy_user_id'),
  '22023', null, 'a token needs a positive lifetime');

-- Password recovery.
select * from auth.open_session(:'cy_user_id') \gset cys_
select auth.issue_one_time_token(:'cy_user_id', 'recovery', 'cy@example.org', '1 hour') as recovery_token \gset
select results_eq(format($$select user_id, error from auth.reset_password(%L, 'new cy password', 10)$$, :'recovery_token'),
  format('values (%L::uuid, null::text)', :'cy_user_id'), 'a recovery token sets a new password');
select is((select outcome from auth.check_password('cy@example.org', 'new cy password')), 'ok', 'the new password works');
select is((select outcome from auth.check_password('cy@example.org', 'cy password')), 'invalid_credentials',
  'the old one does not');
select is((select count(*)::int from auth.sessions where user_id = :'cy_user_id'), 0,
  'a password reset ends every session');
select is((select error from auth.reset_password(:'recovery_token', 'third password', 10)), 'otp_expired',
  'a recovery token works once');

-- What a user may change: metadata, password, address (after confirmation).
select * from auth.open_session(:'cy_user_id') \gset keep_
select * from auth.open_session(:'cy_user_id') \gset other_
select is((select error from auth.update_user(:'cy_user_id', '{"role": "service_role", "theme": "dark"}')), null,
  'a user updates their metadata');
select is((select role from auth.users where id = :'cy_user_id'), 'authenticated', 'a "role" key in it changes no role');
select is((select raw_user_meta_data from auth.users where id = :'cy_user_id'),
  '{"name": "Cy", "role": "service_role", "theme": "dark"}'::jsonb, 'metadata is merged key by key');
select is((select raw_app_meta_data from auth.users where id = :'cy_user_id'),
  '{"provider": "email", "providers": ["email"]}'::jsonb, 'app_metadata is untouched');
select is((select array_agg(p::text order by p::text) from unnest(
            (select proargnames from pg_proc where oid = 'auth.update_user(uuid, jsonb, text, text, integer, uuid, interval, inet)'::regprocedure)) p
            where p ~ '(role|app_meta|confirm|banned)'), null,
  'update_user has no parameter for role, app_metadata, confirmation or ban state');
select is((select error from auth.update_user(:'cy_user_id', p_password => 'new cy password')), 'same_password',
  'the same password is refused');
select is((select error from auth.update_user(:'cy_user_id', p_password => 'fourth password',
                                              p_current_session_id => :'keep_session_id')), null,
  'a user changes their password');
select is((select array_agg(id) from auth.sessions where user_id = :'cy_user_id'), array[:'keep_session_id'::uuid],
  'which ends every other session');

select * from auth.sign_up('dee@example.org', 'dee password', '{}', 10, true) \gset dee_
select is((select error from auth.update_user(:'cy_user_id', p_new_email => 'DEE@example.org')), 'email_exists',
  'an address in use cannot be taken');
select * from auth.update_user(:'cy_user_id', p_new_email => 'cy.new@example.org') \gset change_
select is((select email from auth.users where id = :'cy_user_id'), 'cy@example.org', 'an address change waits for confirmation');
select is((select email_change from auth.users where id = :'cy_user_id'), 'cy.new@example.org', 'as new_email');
select is((select error from auth.verify_one_time_token(:'change_email_change_token', 'email_change')), null,
  'the email_change token confirms it');
select is((select email from auth.users where id = :'cy_user_id'), 'cy.new@example.org', 'the new address is in use');

-- What only an administrator may change.
select is(auth.admin_update_user(:'cy_user_id', '{"app_metadata": {"plan": "pro"}, "role": "service_role", "email_confirm": false}'), null,
  'an administrator updates app_metadata, role and confirmation');
select is((select array[raw_app_meta_data ->> 'plan', role, coalesce(email_confirmed_at::text, 'unconfirmed')]
             from auth.users where id = :'cy_user_id'), array['pro', 'service_role', 'unconfirmed'], 'and they change');
select throws_ok(format($$select auth.admin_update_user(%L, '{"role": "postgres"}')$$, :'cy_user_id'), '22023', null,
  'a role the server cannot switch into is refused');
select throws_ok(format($$select auth.admin_update_user(%L, '{"is_super_admin": true}')$$, :'cy_user_id'), '22023', null,
  'an unknown attribute is refused, not ignored');
-- Malformed values are the caller's mistake (22023), refused before anything changes.
select throws_ok(format($$select auth.admin_update_user(%L, '{"ban_duration": "soon"}')$$, :'cy_user_id'), '22023', null,
  'a ban_duration that is no duration is refused');
select throws_ok(format($$select auth.admin_update_user(%L, '{"ban_duration": "1000000000 years"}')$$, :'cy_user_id'),
  '22023', null, 'a ban_duration past any timestamp is refused');
select throws_ok(format($$select auth.admin_update_user(%L, '{"password_hash": "hunter2"}')$$, :'cy_user_id'), '22023', null,
  'a password_hash that is not bcrypt is refused');
select throws_ok(format($$select auth.admin_update_user(%L, '{"email": 5}')$$, :'cy_user_id'), '22023', null,
  'an email that is not an address is refused');
select throws_ok(format($$select auth.admin_update_user(%L, '{"phone": {"a": 1}}')$$, :'cy_user_id'), '22023', null,
  'a phone that is not text is refused');

-- Nothing of auth is reachable by the API roles, except through the functions, by service_role.
select ok(not has_table_privilege(r, 'auth.' || t, 'select'), r || ' cannot read auth.' || t)
  from unnest(array['anon', 'authenticated', 'service_role']) r,
       unnest(array['users', 'refresh_tokens']) t;
set local role authenticated;
select throws_ok('select * from auth.users', '42501', null, 'authenticated gets permission denied on auth.users');
select throws_ok($$select auth.admin_update_user(gen_random_uuid(), '{"role": "service_role"}')$$, '42501', null,
  'authenticated cannot call the admin functions');
reset role;
set local role anon;
select throws_ok($$select auth.sign_up('x@example.org', 'pw', '{}', 10, true)$$, '42501', null, 'anon cannot call them either');
reset role;
select is((select count(*)::int from information_schema.routine_privileges
            where routine_schema = 'auth' and grantee in ('anon', 'authenticated', 'PUBLIC')
              and routine_name not in ('jwt', 'uid', 'role', 'email')), 0,
  'no auth function but the claim helpers is executable by anon, authenticated or PUBLIC');
select is((select count(*)::int from pg_proc
            where pronamespace = 'auth'::regnamespace and proname not in ('jwt', 'uid', 'role', 'email')
              and has_function_privilege('service_role', oid, 'execute')
              and not (prosecdef and 'search_path=""' = any(proconfig))), 0,
  'every auth function service_role may call is SECURITY DEFINER with an empty search_path');

select * from finish();
rollback;
