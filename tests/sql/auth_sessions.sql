-- pgTAP: sessions, refresh-token rotation with its reuse window, sign-out,
-- and what bans and deletions do to sessions.
begin;
select plan(37);

select * from auth.sign_up('bob@example.org', 'bob password', '{}', 10, true) \gset bob_

-- Opening a session: the token is returned once and stored only as its sha256.
select * from auth.open_session(:'bob_user_id', 'password', 'aal1', '192.0.2.7', 'pgTAP') \gset s1_
select matches(:'s1_refresh_token'::text, '^[A-Za-z0-9_-]{43}$', 'a refresh token is 32 random bytes, URL-safe');
select is((select count(*)::int from auth.refresh_tokens where token_hash = :'s1_refresh_token'), 0,
  'the plaintext token is not stored');
select is((select count(*)::int from auth.refresh_tokens
            where token_hash = encode(extensions.digest(:'s1_refresh_token', 'sha256'), 'hex')
              and session_id = :'s1_session_id' and parent is null and not revoked), 1,
  'its sha256 is, as the session''s first token');
select is((select amr -> 0 ->> 'method' from auth.sessions where id = :'s1_session_id'), 'password',
  'the session keeps how the user signed in');
select isnt((select last_sign_in_at from auth.users where id = :'bob_user_id'), null, 'last_sign_in_at is set');

-- Rotation.
select * from auth.rotate_refresh_token(:'s1_refresh_token', 10, '192.0.2.7') \gset r1_
select isnt(:'r1_refresh_token'::text, :'s1_refresh_token', 'a refresh returns a new token');
select is(:'r1_session_id'::uuid, :'s1_session_id'::uuid, 'in the same session');
select is(:'r1_user_id'::uuid, :'bob_user_id'::uuid, 'for the same user');
select ok((select revoked from auth.refresh_tokens where token_hash = auth.token_hash(:'s1_refresh_token')),
  'the presented token is revoked');
select is((select parent from auth.refresh_tokens where token_hash = auth.token_hash(:'r1_refresh_token')),
  auth.token_hash(:'s1_refresh_token'), 'the new token records its parent');

-- Replaying the parent within the window returns the same child, however often.
select results_eq(format($$select refresh_token, error from auth.rotate_refresh_token(%L, 10)$$, :'s1_refresh_token'),
  format('values (%L, null::text)', :'r1_refresh_token'), 'a replay of the parent within the window gets the same child');
select is((select count(distinct refresh_token)::int from generate_series(1, 20),
                lateral auth.rotate_refresh_token(:'s1_refresh_token', 10)), 1,
  '20 replays of the parent: one successor');
select is((select count(*)::int from auth.refresh_tokens where session_id = :'s1_session_id' and not revoked), 1,
  'the session has exactly one live token');

-- Once the child has been used, replaying the parent is theft: the whole session goes.
select * from auth.rotate_refresh_token(:'r1_refresh_token', 10) \gset r2_
select results_eq(format($$select refresh_token, error from auth.rotate_refresh_token(%L, 10)$$, :'s1_refresh_token'),
  $$values (null::text, 'refresh_token_already_used')$$, 'replaying a grandparent is detected');
select is((select count(*)::int from auth.sessions where id = :'s1_session_id'), 0, 'and revokes the session');
select is((select error from auth.rotate_refresh_token(:'r2_refresh_token', 10)), 'refresh_token_not_found',
  'the live token of the revoked session no longer refreshes');
select ok(exists (select from audit.events where event = 'token_reuse_detected' and actor_id = :'bob_user_id'
                   and details ->> 'session_id' = :'s1_session_id'), 'reuse detection is audited');

-- Replaying the parent after the window also revokes the session.
select * from auth.open_session(:'bob_user_id') \gset s2_
select * from auth.rotate_refresh_token(:'s2_refresh_token', 10) \gset r3_
update auth.refresh_tokens set created_at = now() - interval '11 seconds'
 where token_hash = auth.token_hash(:'r3_refresh_token');
select is((select error from auth.rotate_refresh_token(:'s2_refresh_token', 10)), 'refresh_token_already_used',
  'a replay after the reuse window is detected');
select is((select error from auth.rotate_refresh_token(:'r3_refresh_token', 10)), 'refresh_token_not_found',
  'and the child it would have matched is gone with the session');

select is((select error from auth.rotate_refresh_token('no such token', 10)), 'refresh_token_not_found',
  'an unknown token is refused');
select throws_ok($$select auth.rotate_refresh_token('x', -1)$$, '22023', null, 'a negative window is refused');

-- Time-boxed sessions.
select * from auth.open_session(:'bob_user_id', 'password', 'aal1', null, null, now() - interval '1 second') \gset s3_
select is((select error from auth.rotate_refresh_token(:'s3_refresh_token', 10)), 'session_expired',
  'a session past not_after does not refresh');

-- Sign-out scopes.
select * from auth.open_session(:'bob_user_id') \gset a_
select * from auth.open_session(:'bob_user_id') \gset b_
select * from auth.open_session(:'bob_user_id') \gset c_
select is(auth.sign_out(:'a_session_id', 'others'), 3, 'others: every other session ends (the expired one too)');
select is((select array_agg(id) from auth.sessions where user_id = :'bob_user_id'), array[:'a_session_id'::uuid],
  'and the current one stays');
select is(auth.sign_out(:'a_session_id', 'local'), 1, 'local ends the current session');
select is((select error from auth.rotate_refresh_token(:'a_refresh_token', 10)), 'refresh_token_not_found',
  'a signed-out session no longer refreshes');
select * from auth.open_session(:'bob_user_id') \gset d_
select * from auth.open_session(:'bob_user_id') \gset e_
select is(auth.sign_out(:'d_session_id', 'global'), 2, 'global ends every session of the user');
select is(auth.sign_out(:'d_session_id', 'global'), 0, 'signing out twice is harmless');
select throws_ok(format($$select auth.sign_out(%L, 'everyone')$$, :'e_session_id'), '22023', null,
  'an unknown scope is refused');
select ok(exists (select from audit.events where event = 'logout' and actor_id = :'bob_user_id'), 'sign-out is audited');

-- Bans: sessions end at once, and a banned user cannot open or refresh one.
select * from auth.open_session(:'bob_user_id') \gset f_
select ok(auth.ban_user(:'bob_user_id', '1 hour'), 'ban_user bans a known user');
select is((select error from auth.rotate_refresh_token(:'f_refresh_token', 10)), 'refresh_token_not_found',
  'a ban ends the user''s sessions');
select throws_ok(format($$select auth.open_session(%L)$$, :'bob_user_id'), '28000', 'user_banned',
  'a banned user cannot open a session');
select ok(auth.ban_user(:'bob_user_id', null), 'a null duration lifts the ban');
-- A ban set some other way (an import, a direct update) still stops refreshes.
select * from auth.open_session(:'bob_user_id') \gset g_
update auth.users set banned_until = now() + interval '1 day' where id = :'bob_user_id';
select is((select error from auth.rotate_refresh_token(:'g_refresh_token', 10)), 'user_banned',
  'a banned user''s surviving session does not refresh');

-- Deletion.
update auth.users set banned_until = null where id = :'bob_user_id';
select ok(auth.delete_user(:'bob_user_id', true), 'soft delete');
select is((select count(*)::int from auth.sessions where user_id = :'bob_user_id'), 0,
  'a soft-deleted user has no session left');

select * from finish();
rollback;
