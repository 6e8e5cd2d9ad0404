-- pgTAP: 6-digit email codes: stored hashed, bound to the address, single
-- use, expiring, and locked after too many wrong tries.
begin;
select plan(17);

select * from auth.sign_up('dee@example.org', 'dee password', '{}', 10, false) \gset dee_
select * from auth.sign_up('ann@example.org', 'ann password', '{}', 10, false) \gset ann_

select * from auth.issue_email_otp(:'dee_user_id', 'confirmation', 'dee@example.org', '1 hour') \gset c1_
select matches(:'c1_code'::text, '^[0-9]{6}$', 'a code is six digits');
select is((select count(*)::int from auth.one_time_tokens
            where code_hash = auth.code_hash(id, :'c1_code') and token_hash = auth.token_hash(:'c1_token')), 1,
  'the code is on the link token''s row, stored as a digest bound to the row');
select is((select count(*)::int from auth.one_time_tokens where code_hash = encode(extensions.digest(:'c1_code', 'sha256'), 'hex')), 0,
  'not as the bare sha256 of the code');
select throws_ok($$select auth.issue_email_otp(gen_random_uuid(), 'email_change', 'x@example.org')$$, '22023', NULL,
  'codes exist only for confirmation, recovery and magic links');

-- A code is checked against the address's codes only.
select * from auth.issue_email_otp(:'ann_user_id', 'confirmation', 'ann@example.org', '1 hour') \gset a1_
select is((select error from auth.verify_email_code('ann@example.org', :'c1_code', '{confirmation}')),
  case when :'c1_code' = :'a1_code' then null else 'otp_expired' end,
  'dee''s code does not verify ann (unless both drew the same code)');

-- The right code, for the right address: confirms and consumes.
select results_eq(format($$select user_id, token_type, error from auth.verify_email_code(' DEE@example.org', %L, '{magic_link,confirmation}')$$, :'c1_code'),
  format($$values (%L::uuid, 'confirmation'::text, null::text)$$, :'dee_user_id'), 'the right code verifies, any case of the address');
select isnt((select email_confirmed_at from auth.users where id = :'dee_user_id'), null, 'and confirms the address');
select is((select error from auth.verify_email_code('dee@example.org', :'c1_code', '{confirmation}')), 'otp_expired',
  'a code is single use');
select is((select error from auth.verify_one_time_token(:'c1_token', 'confirmation')), 'otp_expired',
  'and using the code used up the link too');

-- Wrong type and expiry.
select * from auth.issue_email_otp(:'dee_user_id', 'recovery', 'dee@example.org', '1 hour') \gset r1_
select is((select error from auth.verify_email_code('dee@example.org', :'r1_code', '{magic_link}')), 'otp_expired',
  'a recovery code is not a magic-link code');
update auth.one_time_tokens set created_at = now() - interval '2 hours', expires_at = now() - interval '1 second'
 where token_hash = auth.token_hash(:'r1_token');
select is((select error from auth.verify_email_code('dee@example.org', :'r1_code', '{recovery}')), 'otp_expired',
  'an expired code is refused');

-- Brute force: five wrong tries lock the code, the right one then fails too.
select * from auth.issue_email_otp(:'dee_user_id', 'magic_link', 'dee@example.org', '1 hour') \gset m1_
select is((select count(*)::int from generate_series(1, 4) i,
                lateral auth.verify_email_code('dee@example.org',
                                               lpad(((:'m1_code'::int + i) % 1000000)::text, 6, '0'),
                                               '{magic_link}', null, 5) v
            where v.error = 'otp_expired'), 4, 'four wrong codes are refused');
select is((select failed_attempts from auth.one_time_tokens where token_hash = auth.token_hash(:'m1_token')), 4,
  'and counted on the code');
select is((select error from auth.verify_email_code('dee@example.org', 'abc', '{magic_link}', null, 5)), 'otp_expired',
  'the fifth wrong try');
select ok((select consumed_at is not null from auth.one_time_tokens where token_hash = auth.token_hash(:'m1_token')),
  'locks the code');
select is((select error from auth.verify_email_code('dee@example.org', :'m1_code', '{magic_link}', null, 5)), 'otp_expired',
  'after which the right code is refused');
select ok(exists (select from audit.events where event = 'one_time_token_locked' and actor_id = :'dee_user_id'),
  'the lock is audited');

select * from finish();
rollback;
