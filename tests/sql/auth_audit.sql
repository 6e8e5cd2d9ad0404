-- pgTAP: every security event leaves an audit row, in the same transaction,
-- and no audit row holds a secret (password, token, or a token's hash).
begin;
select plan(14);

create temporary table secrets (value text not null);
insert into secrets values ('eve password'), ('wrong eve password'), ('newer eve password');

select * from auth.sign_up('eve@example.org', 'eve password', '{}', 10, true, '198.51.100.9') \gset eve_
select auth.check_password('eve@example.org', 'wrong eve password', '198.51.100.9');
select * from auth.open_session(:'eve_user_id', 'password', 'aal1', '198.51.100.9', 'pgTAP') \gset s_
select * from auth.rotate_refresh_token(:'s_refresh_token', 10, '198.51.100.9') \gset r_
select auth.rotate_refresh_token(:'s_refresh_token', 10, '198.51.100.9');
select auth.issue_one_time_token(:'eve_user_id', 'recovery', 'eve@example.org') as recovery_token \gset
select auth.reset_password(:'recovery_token', 'newer eve password', 10, '198.51.100.9');
select auth.admin_update_user(:'eve_user_id', '{"password": "newer eve password x", "app_metadata": {"tier": 1}}');
insert into secrets values (:'s_refresh_token'), (:'r_refresh_token'), (:'recovery_token'), ('newer eve password x');
insert into secrets select auth.token_hash(value) from secrets;
insert into secrets select encrypted_password from auth.users where id = :'eve_user_id';
-- The password reset ended that session; sign out of a new one.
select * from auth.open_session(:'eve_user_id') \gset s2_
insert into secrets values (:'s2_refresh_token'), (auth.token_hash(:'s2_refresh_token'));
select auth.sign_out(:'s2_session_id', 'global', '198.51.100.9');

select ok(exists (select from audit.events where event = e and actor_id = :'eve_user_id'), e || ' is audited')
  from unnest(array['user_signedup', 'login', 'token_refreshed', 'one_time_token_issued',
                    'one_time_token_verified', 'user_updated_password']) e;
select ok(exists (select from audit.events where event = 'login' and not success and actor_id = :'eve_user_id'
                   and details ->> 'reason' = 'invalid_password'), 'a failed sign-in is audited with its reason');
select ok(exists (select from audit.events where event = 'user_modified' and details ->> 'user_id' = :'eve_user_id'
                   and details -> 'fields' = '["app_metadata", "password"]'), 'an admin change names the fields, not the values');
select ok(exists (select from audit.events where event = 'login' and success and actor_id = :'eve_user_id'
                   and ip = '198.51.100.9'), 'the client address is recorded');
select is((select count(*)::int from audit.events where event = 'token_refreshed' and actor_id = :'eve_user_id'), 2,
  'a rotation and a replay within the window are both recorded');
select is((select count(*)::int from audit.events a join secrets s on strpos(a.details::text, s.value) > 0), 0,
  'no audit row contains a password, token, token hash or password hash');
select is((select count(*)::int from audit.events a where a.details::text ~* '(password|token)"\s*:\s*"'), 0,
  'no audit field is named like a secret');
select ok(exists (select from audit.events where event = 'logout' and actor_id = :'eve_user_id'), 'sign-out is audited');

-- The audit row lives and dies with the change: a rolled-back change leaves none.
savepoint before_failed_change;
select auth.ban_user(:'eve_user_id', '1 day');
rollback to savepoint before_failed_change;
select is((select count(*)::int from audit.events where event = 'user_banned' and details ->> 'user_id' = :'eve_user_id'), 0,
  'a change rolled back leaves no audit row');

select * from finish();
rollback;
