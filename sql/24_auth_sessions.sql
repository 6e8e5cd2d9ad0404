-- Auth, sessions (conventions: sql/21_auth_common.sql): opening a session,
-- refresh-token rotation with reuse detection, sign-out, and what the
-- server reads to mint access tokens and to notice revoked sessions.

-- The successor of a refresh token: an HMAC of the presented token under the
-- session's own key.  Deterministic, so a replay within the reuse window
-- gets the very same child without the child being stored; unguessable
-- without the plaintext parent (never stored) and the key (never leaves the
-- database), so neither a stolen old token nor a copy of the tables yields
-- the live one.
create or replace function auth.derive_refresh_token(p_parent text, p_key bytea) returns text
  language sql immutable strict
  set search_path = ''
  as $$
    select pg_catalog.translate(
      pg_catalog.encode(extensions.hmac(pg_catalog.convert_to(p_parent, 'UTF8'), p_key, 'sha256'), 'base64'),
      '+/=', '-_')
  $$;
revoke all on function auth.derive_refresh_token(text, bytea)
  from public, anon, authenticated, service_role;

-- Opens a session for a user the caller has authenticated (password, link,
-- code, anonymous) and returns its first refresh token, in plaintext, once.
-- Raises 28000 with message user_not_found or user_banned: there is nothing
-- to commit in that case.
create or replace function auth.open_session(
  p_user_id uuid,
  p_method text default 'password',
  p_aal text default 'aal1',
  p_ip inet default null,
  p_user_agent text default null,
  p_not_after timestamptz default null,
  out session_id uuid,
  out refresh_token text
)
  language plpgsql volatile security definer
  set search_path = ''
  as $$
declare
  account auth.users;
  now_ timestamptz := pg_catalog.now();
begin
  select * into account from auth.users u where u.id = p_user_id for share;
  if account.id is null or account.deleted_at is not null then
    raise exception 'user_not_found' using errcode = '28000';
  end if;
  if account.banned_until > now_ then
    raise exception 'user_banned' using errcode = '28000';
  end if;

  insert into auth.sessions (user_id, aal, amr, not_after, user_agent, ip)
  values (p_user_id, p_aal,
          pg_catalog.jsonb_build_array(pg_catalog.jsonb_build_object(
            'method', p_method, 'timestamp', pg_catalog.floor(extract(epoch from now_))::bigint)),
          p_not_after, p_user_agent, p_ip)
  returning id into session_id;

  refresh_token := auth.random_token();
  insert into auth.refresh_tokens (token_hash, user_id, session_id)
  values (auth.token_hash(refresh_token), p_user_id, session_id);

  update auth.users u set last_sign_in_at = now_, updated_at = now_ where u.id = p_user_id;
  perform auth.write_audit_event('login', p_user_id, p_ip, true,
                                 pg_catalog.jsonb_build_object('session_id', session_id, 'method', p_method,
                                                               'aal', p_aal));
end
$$;
revoke all on function auth.open_session(uuid, text, text, inet, text, timestamptz)
  from public, anon, authenticated, service_role;
grant execute on function auth.open_session(uuid, text, text, inet, text, timestamptz) to service_role;

-- Exchanges a refresh token for its successor (GoTrue's refresh_token grant).
-- error is null on success, else one of
--   refresh_token_not_found, refresh_token_already_used, session_expired, user_banned.
--
-- Rotation: a live token is revoked and its child issued; the child is
-- derived from the parent (auth.derive_refresh_token), only its hash stored.
-- Reuse: presenting a revoked token is accepted only if its child is still
-- the session's live token and was issued at most p_reuse_window_seconds ago
-- (a client that lost the response, or concurrent refreshes racing); the
-- answer is that same child, so there is never more than one live token.
-- Any other reuse means the token may be in two hands: the session and all
-- its tokens are deleted, and the caller must commit.
--
-- Concurrency: every refresh of a session first locks the session row, so
-- refreshes of one session run one after another; 20 concurrent refreshes
-- of one token give one rotation and 19 answers with the same child.
create or replace function auth.rotate_refresh_token(
  p_token text,
  p_reuse_window_seconds integer default 10,
  p_ip inet default null,
  out refresh_token text,
  out session_id uuid,
  out user_id uuid,
  out error text
)
  language plpgsql volatile security definer
  set search_path = ''
  as $$
declare
  presented_hash text := auth.token_hash(p_token);
  presented auth.refresh_tokens;
  child auth.refresh_tokens;
  live_session auth.sessions;
  account auth.users;
  successor text;
  now_ timestamptz := pg_catalog.now();
begin
  if p_reuse_window_seconds is null or p_reuse_window_seconds < 0 then
    raise exception 'the reuse window is zero or more seconds' using errcode = '22023';
  end if;

  select * into presented from auth.refresh_tokens t where t.token_hash = presented_hash;
  if presented.id is not null then
    select * into live_session from auth.sessions s where s.id = presented.session_id for update;
    -- Read again under the lock: a refresh we waited for may have rotated it.
    select * into presented from auth.refresh_tokens t where t.id = presented.id;
  end if;
  if live_session.id is null or presented.id is null then
    error := 'refresh_token_not_found';
    perform auth.write_audit_event('token_refreshed', null, p_ip, false,
                                   pg_catalog.jsonb_build_object('reason', error));
    return;
  end if;

  select * into account from auth.users u where u.id = presented.user_id;
  if account.deleted_at is not null or account.banned_until > now_ then
    error := 'user_banned';
  elsif live_session.not_after <= now_ then
    error := 'session_expired';
  end if;
  if error is not null then
    perform auth.write_audit_event('token_refreshed', account.id, p_ip, false,
                                   pg_catalog.jsonb_build_object('reason', error, 'session_id', live_session.id));
    return;
  end if;

  successor := auth.derive_refresh_token(p_token, live_session.refresh_token_hmac_key);

  if not presented.revoked then
    update auth.refresh_tokens t set revoked = true, updated_at = now_ where t.id = presented.id;
    insert into auth.refresh_tokens (token_hash, user_id, session_id, parent)
    values (auth.token_hash(successor), presented.user_id, live_session.id, presented_hash);
    update auth.sessions s set refreshed_at = now_, updated_at = now_ where s.id = live_session.id;
    perform auth.write_audit_event('token_refreshed', account.id, p_ip, true,
                                   pg_catalog.jsonb_build_object('session_id', live_session.id));
    refresh_token := successor;
    session_id := live_session.id;
    user_id := account.id;
    return;
  end if;

  select * into child from auth.refresh_tokens t where t.parent = presented_hash;
  -- now() is when this transaction began: a refresh that waited on the lock
  -- while its twin rotated the token still falls inside the window.
  if child.id is not null and not child.revoked
     and now_ <= child.created_at + pg_catalog.make_interval(secs => p_reuse_window_seconds)
     and child.token_hash = auth.token_hash(successor) then
    perform auth.write_audit_event('token_refreshed', account.id, p_ip, true,
                                   pg_catalog.jsonb_build_object('session_id', live_session.id, 'reused_parent', true));
    refresh_token := successor;
    session_id := live_session.id;
    user_id := account.id;
    return;
  end if;

  delete from auth.sessions s where s.id = live_session.id;
  error := 'refresh_token_already_used';
  perform auth.write_audit_event('token_reuse_detected', account.id, p_ip, false,
                                 pg_catalog.jsonb_build_object('session_id', live_session.id));
end
$$;
revoke all on function auth.rotate_refresh_token(text, integer, inet)
  from public, anon, authenticated, service_role;
grant execute on function auth.rotate_refresh_token(text, integer, inet) to service_role;

-- Sign-out (POST /logout?scope=): local ends the given session, others
-- every other session of its user, global all of them.  Returns how many
-- sessions ended (0 for an unknown session: already signed out).
create or replace function auth.sign_out(p_session_id uuid, p_scope text default 'global', p_ip inet default null)
  returns integer
  language plpgsql volatile security definer
  set search_path = ''
  as $$
declare
  owner_id uuid;
  ended integer;
begin
  if p_scope is null or p_scope not in ('global', 'local', 'others') then
    raise exception 'scope is global, local or others, not %', p_scope using errcode = '22023';
  end if;
  select s.user_id into owner_id from auth.sessions s where s.id = p_session_id;
  if owner_id is null then
    return 0;
  end if;
  if p_scope = 'local' then
    delete from auth.sessions s where s.id = p_session_id;
    get diagnostics ended = row_count;
  elsif p_scope = 'others' then
    ended := auth.end_user_sessions(owner_id, p_session_id);
  else
    ended := auth.end_user_sessions(owner_id);
  end if;
  perform auth.write_audit_event('logout', owner_id, p_ip, true,
                                 pg_catalog.jsonb_build_object('scope', p_scope, 'session_id', p_session_id,
                                                               'sessions_ended', ended));
  return ended;
end
$$;
revoke all on function auth.sign_out(uuid, text, inet)
  from public, anon, authenticated, service_role;
grant execute on function auth.sign_out(uuid, text, inet) to service_role;

-- Which of these sessions still exist: the server's revoked-session cache
-- asks this every auth.session_check_interval for the sessions it has seen.
create or replace function auth.live_sessions(p_ids uuid[]) returns setof uuid
  language sql stable security definer
  set search_path = ''
  as $$ select s.id from auth.sessions s where s.id = any (p_ids) $$;
revoke all on function auth.live_sessions(uuid[]) from public, anon, authenticated, service_role;
grant execute on function auth.live_sessions(uuid[]) to service_role;

-- A live session's claims (aal, amr) and user, or null once it is gone or
-- past not_after: what an access token is minted from.
create or replace function auth.session_info(p_session_id uuid) returns jsonb
  language sql stable security definer
  set search_path = ''
  as $$
    select pg_catalog.jsonb_build_object('session_id', s.id, 'user_id', s.user_id, 'aal', s.aal, 'amr', s.amr)
      from auth.sessions s
     where s.id = p_session_id and (s.not_after is null or s.not_after > pg_catalog.now())
  $$;
revoke all on function auth.session_info(uuid) from public, anon, authenticated, service_role;
grant execute on function auth.session_info(uuid) to service_role;
