-- pgTAP: TOTP steps taken once, backup codes, 2FA challenges and their lockout.
begin;
select plan(18);

select * from dashboard.create_user('mfa@example.com', 'MfaPassword123!', '', 'dashboard_admin', 10) \gset u_

select results_eq($$select error from dashboard.enable_totp((select id from dashboard.users where email = 'mfa@example.com'), 100)$$,
  $$values ('totp_not_set_up')$$, 'enabling needs a stored secret');
select is(dashboard.set_totp_secret(:'u_user_id', '\x0102'::bytea), null, 'setup stores the encrypted secret');
select * from dashboard.enable_totp(:'u_user_id', null) \gset bad_
select is(:'bad_error'::text, 'invalid_code', 'a code that matched no step does not enable');
select backup_codes, coalesce(error, 'none') as error from dashboard.enable_totp(:'u_user_id', 100) \gset on_
select is(:'on_error'::text, 'none', 'a step enables 2FA');
select is(pg_catalog.cardinality(:'on_backup_codes'::text[]), 10, 'with ten backup codes');
select is((select count(*)::int from dashboard.backup_codes where user_id = :'u_user_id' and used_at is null), 10, 'stored as ten digests');
select is((select count(*)::int from dashboard.backup_codes b where b.code_hash = any(:'on_backup_codes'::text[])), 0,
  'never in plaintext');
select is(dashboard.set_totp_secret(:'u_user_id', '\x03'::bytea), 'totp_already_enabled', 'an enabled secret is not replaced');

-- Each time step is good once, and never an earlier one.
select dashboard.start_mfa_challenge(:'u_user_id', '5 minutes') as c1 \gset
select is((select outcome from dashboard.complete_mfa_challenge(:'c1', 100, null, '1 hour')), 'code_already_used',
  'the step used to enable cannot log in');
select is((select outcome from dashboard.complete_mfa_challenge(:'c1', 101, null, '1 hour')), 'ok', 'the next step can');
select is((select outcome from dashboard.complete_mfa_challenge(:'c1', 102, null, '1 hour')), 'challenge_not_found',
  'a challenge is used once');
select dashboard.start_mfa_challenge(:'u_user_id', '5 minutes') as c2 \gset
select is((select outcome from dashboard.complete_mfa_challenge(:'c2', 101, null, '1 hour')), 'code_already_used', 'a replay is refused');
select is((select outcome from dashboard.complete_mfa_challenge(:'c2', null, (:'on_backup_codes'::text[])[1], '1 hour')), 'ok',
  'a backup code logs in');
select dashboard.start_mfa_challenge(:'u_user_id', '5 minutes') as c3 \gset
select is((select outcome from dashboard.complete_mfa_challenge(:'c3', null, (:'on_backup_codes'::text[])[1], '1 hour')), 'invalid_code',
  'once');

-- Wrong codes count towards the lockout.
select dashboard.start_mfa_challenge(:'u_user_id', '5 minutes') as c4 \gset
select is((select outcome from dashboard.complete_mfa_challenge(:'c4', null, 'nope', '1 hour', null, null, 5, 3, '15 minutes')),
  'invalid_code', 'a wrong code');
select is((select outcome from dashboard.complete_mfa_challenge(:'c4', null, 'nope', '1 hour', null, null, 5, 3, '15 minutes')),
  'invalid_code', 'another (the third failure, with the reused backup code above)');
select ok((select locked_until > now() from dashboard.users where id = :'u_user_id'), 'locks the account');
select is((select outcome from dashboard.complete_mfa_challenge(:'c4', 200, null, '1 hour')), 'locked', 'and then even a good code waits');

select * from finish();
rollback;
