-- pgTAP: dashboard administrators: first-admin signup, passwords, lockout, sessions, mail links, privileges.
begin;
select plan(30);

-- The first administrator, and only the first, through the open signup.
select user_id, coalesce(error, 'none') as error from dashboard.create_user('Admin@Example.com', 'SecurePassword123!', 'Admin User', 'dashboard_admin', 10, true, null, '192.0.2.1') \gset first_
select is(:'first_error'::text, 'none', 'the first signup creates an administrator');
select is((select email from dashboard.users where id = :'first_user_id'), 'admin@example.com', 'the address is stored in lower case');
select matches((select password_hash from dashboard.users where id = :'first_user_id'), '^\$2a\$10\$.{53}$', 'the password is bcrypt');
select coalesce(user_id::text, 'none') as user_id, error from dashboard.create_user('second@example.com', 'SecurePassword123!', '', 'dashboard_admin', 10, true) \gset second_
select is(:'second_error'::text, 'signup_closed', 'a second open signup is refused');
select is(:'second_user_id'::text, 'none', 'and creates nothing');
select * from dashboard.create_user('ADMIN@example.com', 'x long password', '', 'dashboard_admin', 10, false) \gset dup_
select is(:'dup_error'::text, 'email_exists', 'one administrator per address, whatever its case');
select throws_ok($$select dashboard.create_user('ops@example.com', 'pw long enough', '', 'root', 10)$$, '23514', null,
  'an unknown role is refused');
select user_id, coalesce(error, 'none') as error from dashboard.create_user('ops@example.com', 'OpsPassword456!', 'Ops', 'dashboard_admin', 10, false, :'first_user_id') \gset ops_
select is(:'ops_error'::text, 'none', 'an administrator creates another');
select ok(not (dashboard.user_json(:'ops_user_id') ?| array['password_hash', 'totp_secret_encrypted', 'failed_attempts']),
  'user_json carries no secret');

-- Passwords and lockout.
select results_eq($$select outcome, totp_enabled from dashboard.check_password('admin@example.com', 'SecurePassword123!')$$,
  $$values ('ok', false)$$, 'the right password: ok');
select is((select outcome from dashboard.check_password('nobody@example.com', 'x')), 'invalid_credentials', 'an unknown address');
select is((select outcome from dashboard.check_password('ops@example.com', 'wrong', null, 3, '15 minutes')), 'invalid_credentials', 'wrong 1');
select is((select outcome from dashboard.check_password('ops@example.com', 'wrong', null, 3, '15 minutes')), 'invalid_credentials', 'wrong 2');
select is((select outcome from dashboard.check_password('ops@example.com', 'wrong', null, 3, '15 minutes')), 'invalid_credentials', 'wrong 3');
select ok((select locked_until > now() from dashboard.users where id = :'ops_user_id'), 'three failures lock the account');
select is((select outcome from dashboard.check_password('ops@example.com', 'OpsPassword456!', null, 3, '15 minutes')),
  'invalid_credentials', 'while locked, the right password is refused too');
select is((select count(*)::int from dashboard.activity_log where action = 'user_locked' and resource_id = :'ops_user_id'), 1,
  'the lock is in the activity log');
select ok(dashboard.unlock_user(:'ops_user_id', :'first_user_id'), 'an administrator unlocks');
select is((select outcome from dashboard.check_password('ops@example.com', 'OpsPassword456!', null, 3, '15 minutes')), 'ok',
  'and the right password works again');

-- Sessions and refresh tokens.
select * from dashboard.open_session(:'first_user_id', 'aal1', '1 hour', '192.0.2.1', 'pgTAP') \gset s_
select is((select count(*)::int from dashboard.sessions where refresh_token_hash = :'s_refresh_token'), 0, 'the refresh token is not stored');
select is(dashboard.session_user(:'s_session_id') ->> 'email', 'admin@example.com', 'a live session names its administrator');
select coalesce(error, 'none') as error from dashboard.refresh_session(:'s_refresh_token', '1 hour') \gset r_
select is(:'r_error'::text, 'none', 'a refresh rotates the token');
select * from dashboard.refresh_session(:'s_refresh_token', '1 hour') \gset again_
select is(:'again_error'::text, 'refresh_token_reused', 'the replaced token again ends the session');
select is(dashboard.session_user(:'s_session_id'), null, 'which is then gone');

-- Mail links.
select dashboard.issue_token(:'ops_user_id', 'password_reset', '1 hour') as reset \gset
select * from dashboard.use_token(:'reset', 'email_verification') \gset wrongkind_
select is(:'wrongkind_error'::text, 'token_not_found', 'a token is good only for its kind');
select * from dashboard.use_token(:'reset', 'password_reset', 'BrandNewPassword789!', 10) \gset used_
select is(:'used_user_id'::uuid, :'ops_user_id'::uuid, 'a reset link sets a new password');
select is((select outcome from dashboard.check_password('ops@example.com', 'BrandNewPassword789!')), 'ok', 'which works');
select * from dashboard.use_token(:'reset', 'password_reset', 'AgainPassword000!', 10) \gset reused_
select is(:'reused_error'::text, 'token_not_found', 'a link works once');

-- Deleting: never the last administrator.
select is(dashboard.delete_user(:'ops_user_id', :'first_user_id'), 'ok', 'an administrator is deleted');
select is(dashboard.delete_user(:'first_user_id', :'first_user_id'), 'last_admin', 'the last one is kept');

select * from finish();
rollback;
