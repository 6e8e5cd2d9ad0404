-- pgTAP: PKCE flow state: a verified link yields one auth code, exchanged
-- once, with the right verifier, in time.
begin;
select plan(11);

select * from auth.sign_up('pia@example.org', 'pia password', '{}', 10, true) \gset pia_
-- RFC 7636 appendix B's verifier and S256 challenge.
\set verifier 'dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk'
\set challenge 'E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM'

select * from auth.issue_email_otp(:'pia_user_id', 'magic_link', 'pia@example.org') \gset m_
select throws_ok(format($$select auth.create_flow_state(%L, 'magic_link', %L, 'md5', 'otp')$$, :'pia_user_id', :'challenge'),
  '22023', NULL, 'only s256 and plain');
select isnt(auth.create_flow_state(:'pia_user_id', 'magic_link', :'challenge', 'S256', 'otp'), null, 'a flow starts');
select is(auth.issue_auth_code(:'m_token'), null, 'no auth code before the link is verified');
select is((select error from auth.verify_one_time_token(:'m_token', 'magic_link')), null, 'the link verifies');
select auth.issue_auth_code(:'m_token') as code \gset
select matches(:'code'::text, '^[A-Za-z0-9_-]{43}$', 'then an auth code is issued');
select is(auth.issue_auth_code(:'m_token'), null, 'once');
select is((select count(*)::int from auth.flow_state where auth_code_hash = auth.token_hash(:'code')), 1, 'stored as its sha256');

select is((select error from auth.exchange_auth_code(:'code', :'verifier' || 'x')), 'bad_code_verifier', 'a wrong verifier is refused');
select results_eq(format($$select user_id, authentication_method, error from auth.exchange_auth_code(%L, %L)$$, :'code', :'verifier'),
  format($$values (%L::uuid, 'otp'::text, null::text)$$, :'pia_user_id'), 'the right verifier exchanges the code');
select is((select error from auth.exchange_auth_code(:'code', :'verifier')), 'flow_state_not_found', 'only once');

-- Expiry.
select * from auth.issue_email_otp(:'pia_user_id', 'magic_link', 'pia@example.org') \gset n_
select auth.create_flow_state(:'pia_user_id', 'magic_link', :'verifier', 'plain', 'otp') as flow \gset
select error from auth.verify_one_time_token(:'n_token', 'magic_link') \gset
select auth.issue_auth_code(:'n_token') as late_code \gset
update auth.flow_state set auth_code_issued_at = now() - interval '6 minutes' where id = :'flow';
select is((select error from auth.exchange_auth_code(:'late_code', :'verifier', '5 minutes')), 'flow_state_expired',
  'a code older than its lifetime is refused');

select * from finish();
rollback;
