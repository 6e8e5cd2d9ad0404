-- Application-user auth: the rules, as functions over the tables of the
-- auth_schema migration.  Re-applied by every `fluxbase migrate`, so every
-- statement is idempotent.
--
-- Who calls what: the server calls the functions below as service_role,
-- inside its role-switched transaction, after it has verified the caller
-- (a JWT's `sub` becomes p_user_id).  anon and authenticated may call none
-- of them, and no API role may read an auth table: these functions are the
-- only way in.  They are SECURITY DEFINER with an empty search_path, so
-- every name is schema-qualified and a caller's objects can never be picked
-- up instead of ours.
--
-- How failures come back: an outcome the caller must be able to commit
-- (a failed sign-in counts towards lockout, a replayed refresh token revokes
-- its session, and both write an audit row) is returned as a GoTrue error
-- code in an `error` or `outcome` column, never raised: raising would roll
-- the counter, the revocation and the audit row back.  The server commits
-- those transactions even when it answers 4xx.  Programming errors (a
-- bcrypt cost below 10, an unknown scope) raise 22023.
--
-- Secrets: passwords are stored as bcrypt, tokens as sha256 hex; the
-- plaintext of a token is returned once, to be sent to its owner.  No
-- secret ever reaches audit.events.

-- ---------------------------------------------------------------------------
-- Private helpers: no role but the owner may execute them; the SECURITY
-- DEFINER functions below run as the owner and call them.
-- ---------------------------------------------------------------------------

-- Tokens are looked up by their sha256: a copy of the tables grants no session.
create or replace function auth.token_hash(p_token text) returns text
  language sql immutable strict
  set search_path = ''
  as $$ select pg_catalog.encode(extensions.digest(p_token, 'sha256'), 'hex') $$;

-- 32 random bytes, URL-safe base64 without padding (43 characters): safe in
-- links and query strings.
create or replace function auth.random_token() returns text
  language sql volatile
  set search_path = ''
  as $$ select pg_catalog.translate(pg_catalog.encode(extensions.gen_random_bytes(32), 'base64'), '+/=', '-_') $$;

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

-- bcrypt through pgcrypto.  The cost comes from configuration and is never
-- below 10.  bcrypt reads only the first 72 bytes, so a longer password is
-- refused rather than silently truncated.
create or replace function auth.hash_password(p_password text, p_cost integer) returns text
  language plpgsql volatile
  set search_path = ''
  as $$
begin
  if p_cost is null or p_cost < 10 or p_cost > 31 then
    raise exception 'bcrypt cost must be between 10 and 31, not %', p_cost using errcode = '22023';
  end if;
  if p_password is null or pg_catalog.octet_length(p_password) not between 1 and 72 then
    raise exception 'a password is 1 to 72 bytes long' using errcode = '22023';
  end if;
  return extensions.crypt(p_password, extensions.gen_salt('bf', p_cost));
end
$$;

-- pgcrypto knows only the $2a$ prefix; given $2b$ or $2y$ it silently falls
-- back to DES.  The three differ only for passwords containing the byte
-- 0xff, which UTF-8 text never holds, so hashes made by GoTrue ($2a$), PHP
-- ($2y$) or OpenBSD ($2b$) are checked as $2a$.
create or replace function auth.password_matches(p_password text, p_hash text) returns boolean
  language plpgsql volatile
  set search_path = ''
  as $$
declare
  normalised text;
begin
  if p_password is null or p_hash is null or pg_catalog.octet_length(p_password) > 72 then
    return false;
  end if;
  normalised := pg_catalog.regexp_replace(p_hash, '^\$2[by]\$', '$2a$');
  return extensions.crypt(p_password, normalised) = normalised;
end
$$;

-- One audit row, in the caller's transaction.  Callers pass ids, reasons and
-- counts only: never a password, token or hash.
create or replace function auth.write_audit_event(
  p_event text, p_actor_id uuid, p_ip inet, p_success boolean, p_details jsonb default '{}'
) returns void
  language sql volatile
  set search_path = ''
  as $$
    insert into audit.events (event, actor_id, ip, success, details)
    values (p_event, p_actor_id, p_ip, p_success, coalesce(p_details, '{}'))
  $$;

-- Signs a user out everywhere (ban, delete, password reset); returns how many.
create or replace function auth.end_user_sessions(p_user_id uuid, p_except_session_id uuid default null)
  returns integer
  language plpgsql volatile
  set search_path = ''
  as $$
declare
  ended integer;
begin
  delete from auth.sessions s
   where s.user_id = p_user_id
     and (p_except_session_id is null or s.id <> p_except_session_id);
  get diagnostics ended = row_count;
  return ended;
end
$$;

-- ---------------------------------------------------------------------------
-- Sign up and sign in
-- ---------------------------------------------------------------------------

-- Creates an email/password user.  For an address already in use it creates
-- nothing and changes nothing (overwriting an unconfirmed account's password
-- would let an attacker pre-register someone else's address), and returns
-- created = false with the existing id, so the server can give the same
-- answer either way.  The password is hashed in both cases, so both answers
-- take one bcrypt.
create or replace function auth.sign_up(
  p_email text,
  p_password text,
  p_user_metadata jsonb default '{}',
  p_password_cost integer default 10,
  p_autoconfirm boolean default false,
  p_ip inet default null,
  out user_id uuid,
  out created boolean
)
  language plpgsql volatile security definer
  set search_path = ''
  as $$
declare
  address text := pg_catalog.lower(pg_catalog.btrim(p_email));
  password_hash text;
begin
  if address is null or address !~ '^[^@[:space:]]+@[^@[:space:]]+$' then
    raise exception 'an email address is required' using errcode = '22023';
  end if;
  if pg_catalog.jsonb_typeof(coalesce(p_user_metadata, '{}')) <> 'object' then
    raise exception 'user metadata must be a JSON object' using errcode = '22023';
  end if;
  password_hash := auth.hash_password(p_password, p_password_cost);

  insert into auth.users (email, encrypted_password, email_confirmed_at, raw_app_meta_data, raw_user_meta_data)
  values (address, password_hash, case when p_autoconfirm then pg_catalog.now() end,
          '{"provider": "email", "providers": ["email"]}', coalesce(p_user_metadata, '{}'))
  on conflict ((pg_catalog.lower(email))) where deleted_at is null and email is not null do nothing
  returning id into user_id;

  if user_id is null then
    select u.id into user_id from auth.users u
     where pg_catalog.lower(u.email) = address and u.deleted_at is null;
    created := false;
    perform auth.write_audit_event('user_repeated_signup', user_id, p_ip, false);
    return;
  end if;

  insert into auth.identities (provider_id, user_id, identity_data, provider, last_sign_in_at)
  values (user_id::text, user_id,
          pg_catalog.jsonb_build_object('sub', user_id::text, 'email', address,
                                        'email_verified', p_autoconfirm, 'phone_verified', false),
          'email', null);
  created := true;
  perform auth.write_audit_event('user_signedup', user_id, p_ip, true,
                                 pg_catalog.jsonb_build_object('provider', 'email'));
end
$$;

-- An anonymous user (signInAnonymously): no email, no password.
create or replace function auth.sign_up_anonymous(p_user_metadata jsonb default '{}', p_ip inet default null)
  returns uuid
  language plpgsql volatile security definer
  set search_path = ''
  as $$
declare
  new_id uuid;
begin
  if pg_catalog.jsonb_typeof(coalesce(p_user_metadata, '{}')) <> 'object' then
    raise exception 'user metadata must be a JSON object' using errcode = '22023';
  end if;
  insert into auth.users (is_anonymous, raw_user_meta_data)
  values (true, coalesce(p_user_metadata, '{}'))
  returning id into new_id;
  perform auth.write_audit_event('user_signedup', new_id, p_ip, true,
                                 pg_catalog.jsonb_build_object('provider', 'anonymous'));
  return new_id;
end
$$;

-- Checks an email and password, with lockout.  outcome is one of
--   ok, invalid_credentials, email_not_confirmed, user_banned
-- and user_id is set unless it is invalid_credentials.  Unknown address,
-- wrong password and locked account all answer invalid_credentials after
-- one bcrypt, so none of them tells an address exists; the last two only
-- come after the right password, as in GoTrue.
--
-- Lockout: p_max_failures wrong passwords within p_failure_window of the
-- first lock the account for p_lockout.  While locked the password is not
-- even compared, and attempts do not extend the lock; it ends by itself, on
-- auth.unlock_user, or never starts again after a success.  The failure is
-- recorded in the users row, so the caller must commit.
create or replace function auth.check_password(
  p_email text,
  p_password text,
  p_ip inet default null,
  p_max_failures integer default 5,
  p_failure_window interval default '15 minutes',
  p_lockout interval default '15 minutes',
  out user_id uuid,
  out outcome text
)
  language plpgsql volatile security definer
  set search_path = ''
  as $$
declare
  -- A valid cost-10 hash compared when there is nothing real to compare, so
  -- that every path costs one bcrypt.
  dummy_hash constant text := '$2a$10$ka4HXmH9a8pZQqCNQfWUKuikmAT9AVew15GePYSIBCv9SBNl9cSKe';
  account auth.users;
  attempts integer;
  window_start timestamptz;
  now_ timestamptz := pg_catalog.now();
begin
  if p_max_failures is null or p_max_failures < 1
     or p_failure_window is null or p_failure_window <= interval '0'
     or p_lockout is null or p_lockout <= interval '0' then
    raise exception 'lockout needs a positive number of failures, window and duration' using errcode = '22023';
  end if;

  -- FOR UPDATE: concurrent failures for one account are counted one by one.
  select * into account from auth.users u
   where pg_catalog.lower(u.email) = pg_catalog.lower(pg_catalog.btrim(p_email)) and u.deleted_at is null
   for update;

  -- The attempted address is not written down: people type passwords into it.
  if account.id is null or account.encrypted_password is null then
    perform auth.password_matches(p_password, dummy_hash);
    outcome := 'invalid_credentials';
    perform auth.write_audit_event('login', account.id, p_ip, false,
                                   pg_catalog.jsonb_build_object('reason', 'invalid_credentials'));
    return;
  end if;

  if account.locked_until > now_ then
    perform auth.password_matches(p_password, dummy_hash);
    outcome := 'invalid_credentials';
    perform auth.write_audit_event('login', account.id, p_ip, false,
                                   pg_catalog.jsonb_build_object('reason', 'locked',
                                                                 'locked_until', account.locked_until));
    return;
  end if;

  if not auth.password_matches(p_password, account.encrypted_password) then
    if account.first_failed_sign_in_at is null or account.first_failed_sign_in_at <= now_ - p_failure_window then
      attempts := 1;
      window_start := now_;
    else
      attempts := account.failed_sign_in_attempts + 1;
      window_start := account.first_failed_sign_in_at;
    end if;
    if attempts >= p_max_failures then
      update auth.users u
         set failed_sign_in_attempts = 0, first_failed_sign_in_at = null,
             locked_until = now_ + p_lockout, updated_at = now_
       where u.id = account.id;
      perform auth.write_audit_event('user_locked', account.id, p_ip, true,
                                     pg_catalog.jsonb_build_object('failures', attempts,
                                                                   'locked_until', now_ + p_lockout));
    else
      update auth.users u
         set failed_sign_in_attempts = attempts, first_failed_sign_in_at = window_start, updated_at = now_
       where u.id = account.id;
    end if;
    outcome := 'invalid_credentials';
    perform auth.write_audit_event('login', account.id, p_ip, false,
                                   pg_catalog.jsonb_build_object('reason', 'invalid_password',
                                                                 'failures', attempts));
    return;
  end if;

  -- The right password ends any failure streak.
  if account.failed_sign_in_attempts <> 0 or account.first_failed_sign_in_at is not null
     or account.locked_until is not null then
    update auth.users u
       set failed_sign_in_attempts = 0, first_failed_sign_in_at = null, locked_until = null, updated_at = now_
     where u.id = account.id;
  end if;

  user_id := account.id;
  if account.banned_until > now_ then
    outcome := 'user_banned';
  elsif account.email_confirmed_at is null then
    outcome := 'email_not_confirmed';
  else
    outcome := 'ok';
    return;  -- auth.open_session writes the successful login
  end if;
  perform auth.write_audit_event('login', account.id, p_ip, false, pg_catalog.jsonb_build_object('reason', outcome));
end
$$;

-- Admin: ends a lockout now.  Returns false for an unknown user.
create or replace function auth.unlock_user(p_user_id uuid, p_actor_id uuid default null, p_ip inet default null)
  returns boolean
  language plpgsql volatile security definer
  set search_path = ''
  as $$
begin
  update auth.users u
     set failed_sign_in_attempts = 0, first_failed_sign_in_at = null, locked_until = null,
         updated_at = pg_catalog.now()
   where u.id = p_user_id;
  if not found then
    return false;
  end if;
  perform auth.write_audit_event('user_unlocked', p_actor_id, p_ip, true,
                                 pg_catalog.jsonb_build_object('user_id', p_user_id));
  return true;
end
$$;

-- ---------------------------------------------------------------------------
-- Sessions and refresh tokens
-- ---------------------------------------------------------------------------

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

-- ---------------------------------------------------------------------------
-- One-time tokens: confirmation, recovery, email change, magic link,
-- reauthentication
-- ---------------------------------------------------------------------------

-- Issues a token for a user and returns it in plaintext, once, for the mail.
-- It replaces the user's previous unconsumed token of that type.
-- p_relates_to is the address the mail goes to (the new one for an email
-- change).  Raises 28000 user_not_found for an unknown or deleted user.
create or replace function auth.issue_one_time_token(
  p_user_id uuid,
  p_token_type text,
  p_relates_to text,
  p_lifetime interval default '1 hour',
  p_ip inet default null
) returns text
  language plpgsql volatile security definer
  set search_path = ''
  as $$
declare
  token text := auth.random_token();
  now_ timestamptz := pg_catalog.now();
begin
  if p_lifetime is null or p_lifetime <= interval '0' then
    raise exception 'a one-time token needs a positive lifetime' using errcode = '22023';
  end if;
  perform from auth.users u where u.id = p_user_id and u.deleted_at is null for update;
  if not found then
    raise exception 'user_not_found' using errcode = '28000';
  end if;

  delete from auth.one_time_tokens o
   where o.user_id = p_user_id and o.token_type = p_token_type and o.consumed_at is null;
  insert into auth.one_time_tokens (user_id, token_type, token_hash, relates_to, expires_at)
  values (p_user_id, p_token_type, auth.token_hash(token), pg_catalog.lower(pg_catalog.btrim(p_relates_to)),
          now_ + p_lifetime);

  -- The *_sent_at fields of the GoTrue user object.
  update auth.users u
     set confirmation_sent_at = case when p_token_type = 'confirmation' then now_ else u.confirmation_sent_at end,
         recovery_sent_at = case when p_token_type in ('recovery', 'magic_link') then now_ else u.recovery_sent_at end,
         email_change_sent_at = case when p_token_type = 'email_change' then now_ else u.email_change_sent_at end,
         updated_at = now_
   where u.id = p_user_id;
  perform auth.write_audit_event('one_time_token_issued', p_user_id, p_ip, true,
                                 pg_catalog.jsonb_build_object('token_type', p_token_type));
  return token;
end
$$;

-- Consumes the one-time token p_id (a row the caller found by link token
-- or by code), then does what its type means:
--   confirmation, magic_link, recovery  the address is confirmed (the mail arrived);
--   email_change                        the pending new address becomes the address;
--   reauthentication                    nothing more (the caller may now change the password).
-- error is null on success, else otp_expired (unknown, wrong type, used or
-- expired: one answer for all) or email_exists.  Single use holds under
-- concurrency: the token row is locked before it is checked.  Private: the
-- entry points are auth.verify_one_time_token and auth.verify_email_code.
create or replace function auth.use_one_time_token(
  p_id uuid,
  p_token_type text,
  p_ip inet default null,
  out user_id uuid,
  out error text
)
  language plpgsql volatile
  set search_path = ''
  as $$
declare
  ott auth.one_time_tokens;
  account auth.users;
  now_ timestamptz := pg_catalog.now();
begin
  select * into ott from auth.one_time_tokens o where o.id = p_id for update;
  if ott.id is not null then
    select * into account from auth.users u where u.id = ott.user_id for update;
  end if;
  if ott.id is null or ott.token_type <> p_token_type or ott.consumed_at is not null
     or ott.expires_at <= now_ or account.deleted_at is not null
     -- a confirmation sent to an address the account no longer has
     or (ott.token_type in ('confirmation', 'magic_link', 'recovery')
         and ott.relates_to is distinct from pg_catalog.lower(account.email))
     or (ott.token_type = 'email_change' and ott.relates_to is distinct from pg_catalog.lower(account.email_change)) then
    error := 'otp_expired';
    perform auth.write_audit_event('one_time_token_verified', account.id, p_ip, false,
                                   pg_catalog.jsonb_build_object('token_type', p_token_type, 'reason', error));
    return;
  end if;

  update auth.one_time_tokens o set consumed_at = now_ where o.id = ott.id;

  if ott.token_type = 'email_change' then
    if exists (select from auth.users u
                where pg_catalog.lower(u.email) = ott.relates_to and u.deleted_at is null and u.id <> account.id) then
      error := 'email_exists';
      perform auth.write_audit_event('one_time_token_verified', account.id, p_ip, false,
                                     pg_catalog.jsonb_build_object('token_type', p_token_type, 'reason', error));
      return;
    end if;
    update auth.users u
       set email = ott.relates_to, email_change = null, email_change_sent_at = null,
           email_confirmed_at = now_, updated_at = now_
     where u.id = account.id;
    update auth.identities i
       set identity_data = i.identity_data || pg_catalog.jsonb_build_object('email', ott.relates_to),
           updated_at = now_
     where i.user_id = account.id and i.provider = 'email';
  elsif ott.token_type in ('confirmation', 'magic_link', 'recovery') then
    update auth.users u
       set email_confirmed_at = coalesce(u.email_confirmed_at, now_), updated_at = now_
     where u.id = account.id;
    update auth.identities i
       set identity_data = i.identity_data || '{"email_verified": true}', updated_at = now_
     where i.user_id = account.id and i.provider = 'email';
  end if;

  user_id := account.id;
  perform auth.write_audit_event('one_time_token_verified', account.id, p_ip, true,
                                 pg_catalog.jsonb_build_object('token_type', ott.token_type));
end
$$;

-- Verifies a link token (GET/POST /verify with token or token_hash) and
-- consumes it: see auth.use_one_time_token.
create or replace function auth.verify_one_time_token(
  p_token text,
  p_token_type text,
  p_ip inet default null,
  out user_id uuid,
  out error text
)
  language plpgsql volatile security definer
  set search_path = ''
  as $$
declare
  found_id uuid;
begin
  select o.id into found_id from auth.one_time_tokens o where o.token_hash = auth.token_hash(p_token);
  select * into user_id, error from auth.use_one_time_token(found_id, p_token_type, p_ip);
end
$$;

-- ---------------------------------------------------------------------------
-- Email codes: 6 digits on the same row as a link token
-- ---------------------------------------------------------------------------

-- Six decimal digits, uniform: 24 random bits, redrawn above 15,999,999.
create or replace function auth.random_code() returns text
  language plpgsql volatile
  set search_path = ''
  as $$
declare
  n bigint;
begin
  loop
    n := ('x' || pg_catalog.encode(extensions.gen_random_bytes(3), 'hex'))::bit(24)::bigint;
    exit when n < 16000000;
  end loop;
  return pg_catalog.lpad((n % 1000000)::text, 6, '0');
end
$$;

-- What is stored for a code: bound to its row, so equal codes of two users
-- differ and a stored digest never matches another row.  (A million codes
-- are quickly tried offline against a stolen digest; the code is useless
-- without its live row, which expires, and no API role reads the table.)
create or replace function auth.code_hash(p_token_id uuid, p_code text) returns text
  language sql immutable strict
  set search_path = ''
  as $$ select auth.token_hash(p_token_id::text || ':' || p_code) $$;

-- Issues a link token (auth.issue_one_time_token) with a 6-digit code on
-- the same row, and returns both in plaintext, once, for the mail.  For the
-- kinds a client verifies by code: confirmation, recovery, magic_link.
create or replace function auth.issue_email_otp(
  p_user_id uuid,
  p_token_type text,
  p_relates_to text,
  p_lifetime interval default '1 hour',
  p_ip inet default null,
  out token text,
  out code text
)
  language plpgsql volatile security definer
  set search_path = ''
  as $$
begin
  if p_token_type is null or p_token_type not in ('confirmation', 'recovery', 'magic_link') then
    raise exception 'email codes exist for confirmation, recovery and magic_link, not %', p_token_type
      using errcode = '22023';
  end if;
  token := auth.issue_one_time_token(p_user_id, p_token_type, p_relates_to, p_lifetime, p_ip);
  code := auth.random_code();
  update auth.one_time_tokens o set code_hash = auth.code_hash(o.id, code)
   where o.token_hash = auth.token_hash(token);
end
$$;

-- Verifies a code for an address (POST /verify {type, email, token}): the
-- code is compared only with the live codes of that address and of the
-- given types, newest first; the one that matches is consumed as by
-- auth.use_one_time_token, and token_type says which kind it was.
--
-- Guessing: each wrong code counts on every live code of the address; at
-- p_max_attempts the code is used up (the link with it) and only a new mail
-- gives a new one.  The count is written, so the caller must commit even
-- though it answers otp_expired.  The rows are locked first: concurrent
-- guesses are counted one by one.
create or replace function auth.verify_email_code(
  p_email text,
  p_code text,
  p_token_types text[],
  p_ip inet default null,
  p_max_attempts integer default 5,
  out user_id uuid,
  out token_type text,
  out error text
)
  language plpgsql volatile security definer
  set search_path = ''
  as $$
declare
  address text := pg_catalog.lower(pg_catalog.btrim(p_email));
  candidate auth.one_time_tokens;
  matched uuid;
  owner_id uuid;
  locked integer;
begin
  if p_max_attempts is null or p_max_attempts < 1 then
    raise exception 'the attempt limit is a positive number' using errcode = '22023';
  end if;
  for candidate in
    select * from auth.one_time_tokens o
     where o.relates_to = address and o.token_type = any (p_token_types)
       and o.consumed_at is null and o.code_hash is not null
     order by o.created_at desc, o.id
       for update
  loop
    owner_id := candidate.user_id;
    if matched is null and p_code ~ '^[0-9]{6}$' and candidate.code_hash = auth.code_hash(candidate.id, p_code) then
      matched := candidate.id;
      token_type := candidate.token_type;
    end if;
  end loop;

  if matched is not null then
    select * into user_id, error from auth.use_one_time_token(matched, token_type, p_ip);
    return;
  end if;

  update auth.one_time_tokens o
     set failed_attempts = o.failed_attempts + 1,
         consumed_at = case when o.failed_attempts + 1 >= p_max_attempts then pg_catalog.now() end
   where o.relates_to = address and o.token_type = any (p_token_types)
     and o.consumed_at is null and o.code_hash is not null;
  select pg_catalog.count(*) into locked from auth.one_time_tokens o
   where o.relates_to = address and o.token_type = any (p_token_types)
     and o.code_hash is not null and o.failed_attempts >= p_max_attempts
     and o.consumed_at = pg_catalog.now();
  error := 'otp_expired';
  perform auth.write_audit_event('one_time_token_verified', owner_id, p_ip, false,
                                 pg_catalog.jsonb_build_object('by', 'code', 'reason', 'wrong_code'));
  if locked > 0 then
    perform auth.write_audit_event('one_time_token_locked', owner_id, p_ip, true,
                                   pg_catalog.jsonb_build_object('attempts', p_max_attempts));
  end if;
end
$$;

-- ---------------------------------------------------------------------------
-- PKCE: flow state, auth code, exchange
-- ---------------------------------------------------------------------------

-- Starts a PKCE flow for the user's live one-time token of p_token_type
-- (just issued for the mail): the link then ends in an auth code instead of
-- a session.  p_authentication_method is the session's amr method later.
create or replace function auth.create_flow_state(
  p_user_id uuid,
  p_token_type text,
  p_code_challenge text,
  p_code_challenge_method text,
  p_authentication_method text,
  p_lifetime interval default '1 hour',
  p_ip inet default null
) returns uuid
  language plpgsql volatile security definer
  set search_path = ''
  as $$
declare
  flow_id uuid;
  method text := pg_catalog.lower(p_code_challenge_method);
begin
  if method is null or method not in ('s256', 'plain') then
    raise exception 'code_challenge_method is s256 or plain' using errcode = '22023';
  end if;
  if p_code_challenge is null or p_code_challenge !~ '^[A-Za-z0-9._~-]{43,128}$' then
    raise exception 'code_challenge is 43 to 128 characters of A-Z a-z 0-9 . _ ~ -' using errcode = '22023';
  end if;
  if p_lifetime is null or p_lifetime <= interval '0' then
    raise exception 'a flow needs a positive lifetime' using errcode = '22023';
  end if;
  insert into auth.flow_state (user_id, code_challenge, code_challenge_method, authentication_method, expires_at)
  values (p_user_id, p_code_challenge, method, p_authentication_method, pg_catalog.now() + p_lifetime)
  returning id into flow_id;
  update auth.one_time_tokens o set flow_state_id = flow_id
   where o.user_id = p_user_id and o.token_type = p_token_type and o.consumed_at is null;
  perform auth.write_audit_event('flow_state_created', p_user_id, p_ip, true,
                                 pg_catalog.jsonb_build_object('token_type', p_token_type, 'method', method));
  return flow_id;
end
$$;

-- After a link token has been verified (auth.verify_one_time_token, same
-- transaction): if it started a PKCE flow, issues that flow's auth code,
-- once, and returns it in plaintext; null when the token started no flow.
create or replace function auth.issue_auth_code(p_token text, p_ip inet default null) returns text
  language plpgsql volatile security definer
  set search_path = ''
  as $$
declare
  flow auth.flow_state;
  code text := auth.random_token();
begin
  select f.* into flow from auth.flow_state f
    join auth.one_time_tokens o on o.flow_state_id = f.id
   where o.token_hash = auth.token_hash(p_token) and o.consumed_at is not null
     for update of f;
  if flow.id is null or flow.auth_code_hash is not null or flow.consumed_at is not null then
    return null;
  end if;
  update auth.flow_state f set auth_code_hash = auth.token_hash(code), auth_code_issued_at = pg_catalog.now()
   where f.id = flow.id;
  return code;
end
$$;

-- POST /token?grant_type=pkce: exchanges an auth code and its verifier.
-- error is null on success (user_id and authentication_method set), else
--   flow_state_not_found  unknown or already exchanged code;
--   flow_state_expired    the code is older than p_code_lifetime, or the flow ran out;
--   bad_code_verifier     the verifier does not match the challenge.
-- A successful or expired exchange uses the flow up; a wrong verifier does
-- not (it is 43+ random characters: guessing is hopeless, and an attacker
-- holding only the code cannot burn the victim's flow).  Audited; commit.
create or replace function auth.exchange_auth_code(
  p_auth_code text,
  p_code_verifier text,
  p_code_lifetime interval default '5 minutes',
  p_ip inet default null,
  out user_id uuid,
  out authentication_method text,
  out error text
)
  language plpgsql volatile security definer
  set search_path = ''
  as $$
declare
  flow auth.flow_state;
  now_ timestamptz := pg_catalog.now();
  expected text;
begin
  select * into flow from auth.flow_state f where f.auth_code_hash = auth.token_hash(p_auth_code) for update;
  if flow.id is null or flow.consumed_at is not null then
    error := 'flow_state_not_found';
  elsif flow.auth_code_issued_at + p_code_lifetime <= now_ or flow.expires_at <= now_ then
    error := 'flow_state_expired';
    update auth.flow_state f set consumed_at = now_ where f.id = flow.id;
  else
    expected := case flow.code_challenge_method
                  when 's256' then pg_catalog.rtrim(pg_catalog.translate(pg_catalog.encode(
                                     extensions.digest(coalesce(p_code_verifier, ''), 'sha256'), 'base64'),
                                     '+/', '-_'), '=')
                  else coalesce(p_code_verifier, '') end;
    if expected <> flow.code_challenge then
      error := 'bad_code_verifier';
    end if;
  end if;
  if error is not null then
    perform auth.write_audit_event('pkce_exchange', flow.user_id, p_ip, false,
                                   pg_catalog.jsonb_build_object('reason', error));
    return;
  end if;
  update auth.flow_state f set consumed_at = now_ where f.id = flow.id;
  user_id := flow.user_id;
  authentication_method := flow.authentication_method;
  perform auth.write_audit_event('pkce_exchange', flow.user_id, p_ip, true,
                                 pg_catalog.jsonb_build_object('method', flow.code_challenge_method));
end
$$;

-- Sets a new password with a recovery token: consumes the token, ends every
-- session (whoever knew the old password is signed out) and any lockout.
-- error as in auth.verify_one_time_token.
create or replace function auth.reset_password(
  p_token text,
  p_new_password text,
  p_password_cost integer default 10,
  p_ip inet default null,
  out user_id uuid,
  out error text
)
  language plpgsql volatile security definer
  set search_path = ''
  as $$
declare
  new_hash text := auth.hash_password(p_new_password, p_password_cost);
  verified record;
begin
  select * into verified from auth.verify_one_time_token(p_token, 'recovery', p_ip);
  if verified.error is not null then
    error := verified.error;
    return;
  end if;
  update auth.users u
     set encrypted_password = new_hash, failed_sign_in_attempts = 0, first_failed_sign_in_at = null,
         locked_until = null, updated_at = pg_catalog.now()
   where u.id = verified.user_id;
  perform auth.end_user_sessions(verified.user_id);
  user_id := verified.user_id;
  perform auth.write_audit_event('user_updated_password', user_id, p_ip, true,
                                 pg_catalog.jsonb_build_object('via', 'recovery'));
end
$$;

-- ---------------------------------------------------------------------------
-- The user's own changes (PUT /user) and the administrator's
-- ---------------------------------------------------------------------------

-- What a user may change about themselves, and nothing else: metadata
-- (merged key by key, as GoTrue does), password, and a request to change
-- the address (confirmed later by the email_change token this returns).
-- Role, app_metadata and verification state are not parameters, so they
-- cannot be changed here.  A new password ends every other session.
-- error is null on success, else user_not_found, user_banned, same_password
-- or email_exists; nothing is changed when there is an error.
create or replace function auth.update_user(
  p_user_id uuid,
  p_user_metadata jsonb default null,
  p_password text default null,
  p_new_email text default null,
  p_password_cost integer default 10,
  p_current_session_id uuid default null,
  p_email_change_lifetime interval default '1 hour',
  p_ip inet default null,
  out error text,
  out email_change_token text
)
  language plpgsql volatile security definer
  set search_path = ''
  as $$
declare
  account auth.users;
  new_address text := pg_catalog.lower(pg_catalog.btrim(p_new_email));
  changed text[] := '{}';
  now_ timestamptz := pg_catalog.now();
begin
  if p_user_metadata is not null and pg_catalog.jsonb_typeof(p_user_metadata) <> 'object' then
    raise exception 'user metadata must be a JSON object' using errcode = '22023';
  end if;
  if new_address is not null and new_address !~ '^[^@[:space:]]+@[^@[:space:]]+$' then
    raise exception 'not an email address' using errcode = '22023';
  end if;
  select * into account from auth.users u where u.id = p_user_id for update;
  if account.id is null or account.deleted_at is not null then
    error := 'user_not_found';
  elsif account.banned_until > now_ then
    error := 'user_banned';
  elsif p_password is not null and auth.password_matches(p_password, account.encrypted_password) then
    error := 'same_password';
  elsif new_address is not null and new_address is distinct from pg_catalog.lower(account.email)
        and exists (select from auth.users u
                     where pg_catalog.lower(u.email) = new_address and u.deleted_at is null) then
    error := 'email_exists';
  end if;
  if error is not null then
    return;
  end if;

  if p_user_metadata is not null then
    update auth.users u set raw_user_meta_data = u.raw_user_meta_data || p_user_metadata, updated_at = now_
     where u.id = p_user_id;
    changed := changed || 'user_metadata'::text;
  end if;
  if p_password is not null then
    update auth.users u set encrypted_password = auth.hash_password(p_password, p_password_cost), updated_at = now_
     where u.id = p_user_id;
    perform auth.end_user_sessions(p_user_id, p_current_session_id);
    changed := changed || 'password'::text;
  end if;
  if new_address is not null and new_address is distinct from pg_catalog.lower(account.email) then
    update auth.users u set email_change = new_address, updated_at = now_ where u.id = p_user_id;
    email_change_token := auth.issue_one_time_token(p_user_id, 'email_change', new_address,
                                                    p_email_change_lifetime, p_ip);
    changed := changed || 'email_change'::text;
  end if;
  perform auth.write_audit_event('user_modified', p_user_id, p_ip, true,
                                 pg_catalog.jsonb_build_object('user_id', p_user_id,
                                                               'fields', pg_catalog.to_jsonb(changed)));
end
$$;

-- Bans a user for p_duration (null lifts the ban).  A ban ends every session
-- at once; auth.rotate_refresh_token also refuses banned users.
create or replace function auth.ban_user(
  p_user_id uuid, p_duration interval, p_actor_id uuid default null, p_ip inet default null
) returns boolean
  language plpgsql volatile security definer
  set search_path = ''
  as $$
declare
  ended integer := 0;
begin
  if p_duration is not null and p_duration <= interval '0' then
    raise exception 'a ban lasts a positive time; null lifts it' using errcode = '22023';
  end if;
  update auth.users u
     set banned_until = pg_catalog.now() + p_duration, updated_at = pg_catalog.now()
   where u.id = p_user_id and u.deleted_at is null;
  if not found then
    return false;
  end if;
  if p_duration is not null then
    ended := auth.end_user_sessions(p_user_id);
  end if;
  perform auth.write_audit_event(case when p_duration is null then 'user_unbanned' else 'user_banned' end,
                                 p_actor_id, p_ip, true,
                                 pg_catalog.jsonb_build_object('user_id', p_user_id, 'sessions_ended', ended));
  return true;
end
$$;

-- Deletes a user.  Hard (the default, DELETE /admin/users/{id}): the row and
-- everything that hangs off it go.  Soft (should_soft_delete): the row stays
-- with deleted_at set, for records, but can never sign in again: password,
-- identities, sessions and one-time tokens are removed, and the address is
-- free for a new account (the unique index covers live users only).
create or replace function auth.delete_user(
  p_user_id uuid, p_soft boolean default false, p_actor_id uuid default null, p_ip inet default null
) returns boolean
  language plpgsql volatile security definer
  set search_path = ''
  as $$
begin
  if coalesce(p_soft, false) then
    update auth.users u
       set deleted_at = pg_catalog.now(), encrypted_password = null, email_change = null,
           updated_at = pg_catalog.now()
     where u.id = p_user_id and u.deleted_at is null;
    if not found then
      return false;
    end if;
    perform auth.end_user_sessions(p_user_id);
    delete from auth.identities i where i.user_id = p_user_id;
    delete from auth.one_time_tokens o where o.user_id = p_user_id;
  else
    delete from auth.users u where u.id = p_user_id;
    if not found then
      return false;
    end if;
  end if;
  perform auth.write_audit_event('user_deleted', p_actor_id, p_ip, true,
                                 pg_catalog.jsonb_build_object('user_id', p_user_id, 'soft', coalesce(p_soft, false)));
  return true;
end
$$;

-- Admin update (PUT /admin/users/{id}), taking GoTrue's body as it comes:
-- email, phone, password, password_hash, email_confirm, phone_confirm,
-- user_metadata, app_metadata (both merged), role, ban_duration (an
-- interval, or 'none' to lift a ban).  An unknown key is refused rather
-- than ignored.  role is limited to the API roles the server can switch
-- into.  A new password ends the user's sessions.  Returns null on success,
-- else user_not_found or email_exists (and changes nothing).
create or replace function auth.admin_update_user(
  p_user_id uuid,
  p_changes jsonb,
  p_actor_id uuid default null,
  p_ip inet default null,
  p_password_cost integer default 10
) returns text
  language plpgsql volatile security definer
  set search_path = ''
  as $$
declare
  account auth.users;
  unknown text;
  new_address text := pg_catalog.lower(pg_catalog.btrim(p_changes ->> 'email'));
  now_ timestamptz := pg_catalog.now();
begin
  if pg_catalog.jsonb_typeof(p_changes) is distinct from 'object' then
    raise exception 'changes must be a JSON object' using errcode = '22023';
  end if;
  select k into unknown from pg_catalog.jsonb_object_keys(p_changes) k
   where k not in ('email', 'phone', 'password', 'password_hash', 'email_confirm', 'phone_confirm',
                   'user_metadata', 'app_metadata', 'role', 'ban_duration')
   limit 1;
  if unknown is not null then
    raise exception 'unknown user attribute %', unknown using errcode = '22023';
  end if;
  if p_changes ? 'role' and (p_changes ->> 'role') not in ('anon', 'authenticated', 'service_role') then
    raise exception 'role must be anon, authenticated or service_role' using errcode = '22023';
  end if;
  if (p_changes ? 'user_metadata' and pg_catalog.jsonb_typeof(p_changes -> 'user_metadata') <> 'object')
     or (p_changes ? 'app_metadata' and pg_catalog.jsonb_typeof(p_changes -> 'app_metadata') <> 'object') then
    raise exception 'metadata must be a JSON object' using errcode = '22023';
  end if;

  select * into account from auth.users u where u.id = p_user_id and u.deleted_at is null for update;
  if account.id is null then
    return 'user_not_found';
  end if;
  if new_address is not null and exists (
       select from auth.users u
        where pg_catalog.lower(u.email) = new_address and u.deleted_at is null and u.id <> p_user_id) then
    return 'email_exists';
  end if;

  update auth.users u set
    email = coalesce(new_address, u.email),
    email_change = case when new_address is not null then null else u.email_change end,
    phone = case when p_changes ? 'phone' then p_changes ->> 'phone' else u.phone end,
    encrypted_password = case
      when p_changes ? 'password' then auth.hash_password(p_changes ->> 'password', p_password_cost)
      when p_changes ? 'password_hash' then p_changes ->> 'password_hash'  -- the check constraint wants bcrypt
      else u.encrypted_password end,
    email_confirmed_at = case
      when not p_changes ? 'email_confirm' then u.email_confirmed_at
      when (p_changes -> 'email_confirm')::boolean then coalesce(u.email_confirmed_at, now_)
      end,
    phone_confirmed_at = case
      when not p_changes ? 'phone_confirm' then u.phone_confirmed_at
      when (p_changes -> 'phone_confirm')::boolean then coalesce(u.phone_confirmed_at, now_)
      end,
    raw_user_meta_data = u.raw_user_meta_data || coalesce(p_changes -> 'user_metadata', '{}'),
    raw_app_meta_data = u.raw_app_meta_data || coalesce(p_changes -> 'app_metadata', '{}'),
    role = coalesce(p_changes ->> 'role', u.role),
    updated_at = now_
  where u.id = p_user_id;

  if p_changes ? 'password' or p_changes ? 'password_hash' then
    perform auth.end_user_sessions(p_user_id);
  end if;
  if p_changes ? 'ban_duration' then
    perform auth.ban_user(p_user_id,
                          case when p_changes ->> 'ban_duration' = 'none' then null
                               else (p_changes ->> 'ban_duration')::interval end,
                          p_actor_id, p_ip);
  end if;
  -- The keys that changed, never their values (a password among them).
  perform auth.write_audit_event('user_modified', p_actor_id, p_ip, true,
                                 pg_catalog.jsonb_build_object(
                                   'user_id', p_user_id,
                                   'fields', (select pg_catalog.jsonb_agg(k order by k)
                                                from pg_catalog.jsonb_object_keys(p_changes) k)));
  return null;
end
$$;

-- ---------------------------------------------------------------------------
-- Reading users
-- ---------------------------------------------------------------------------

-- The GoTrue User object for one user (GET /user, admin get), null if none.
-- Lockout counters and the password hash are not part of it.
create or replace function auth.user_json(p_user_id uuid) returns jsonb
  language sql stable security definer
  set search_path = ''
  as $$
    select pg_catalog.jsonb_build_object(
             'id', u.id, 'aud', u.aud, 'role', u.role,
             'email', coalesce(u.email, ''), 'phone', coalesce(u.phone, ''),
             'email_confirmed_at', u.email_confirmed_at, 'phone_confirmed_at', u.phone_confirmed_at,
             'confirmed_at', u.confirmed_at, 'confirmation_sent_at', u.confirmation_sent_at,
             'recovery_sent_at', u.recovery_sent_at, 'invited_at', u.invited_at,
             'new_email', u.email_change, 'email_change_sent_at', u.email_change_sent_at,
             'last_sign_in_at', u.last_sign_in_at,
             'app_metadata', u.raw_app_meta_data, 'user_metadata', u.raw_user_meta_data,
             'identities', coalesce((
               select pg_catalog.jsonb_agg(pg_catalog.jsonb_build_object(
                        'identity_id', i.id, 'id', i.provider_id, 'user_id', i.user_id,
                        'identity_data', i.identity_data, 'provider', i.provider, 'email', i.email,
                        'last_sign_in_at', i.last_sign_in_at, 'created_at', i.created_at,
                        'updated_at', i.updated_at) order by i.created_at)
                 from auth.identities i where i.user_id = u.id), '[]'),
             'created_at', u.created_at, 'updated_at', u.updated_at,
             'banned_until', u.banned_until, 'deleted_at', u.deleted_at,
             'is_anonymous', u.is_anonymous, 'is_sso_user', u.is_sso_user)
      from auth.users u
     where u.id = p_user_id
  $$;

-- ---------------------------------------------------------------------------
-- What the HTTP layer needs to read: lookups by address, live sessions, the
-- admin list.  Read-only, service_role only, like everything above.
-- ---------------------------------------------------------------------------

-- The live user with this address (any case), or null.  The server uses it
-- to decide whether to send mail; its answer to the client never depends on it.
create or replace function auth.find_user_by_email(p_email text) returns uuid
  language sql stable security definer
  set search_path = ''
  as $$
    select u.id from auth.users u
     where pg_catalog.lower(u.email) = pg_catalog.lower(pg_catalog.btrim(p_email)) and u.deleted_at is null
  $$;

-- Which of these sessions still exist: the server's revoked-session cache
-- asks this every auth.session_check_interval for the sessions it has seen.
create or replace function auth.live_sessions(p_ids uuid[]) returns setof uuid
  language sql stable security definer
  set search_path = ''
  as $$ select s.id from auth.sessions s where s.id = any (p_ids) $$;

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

-- GET /admin/users: one page of GoTrue User objects, oldest first, and the total.
create or replace function auth.list_users(p_page integer, p_per_page integer,
                                           out users jsonb, out total bigint)
  language sql stable security definer
  set search_path = ''
  as $$
    select coalesce((select pg_catalog.jsonb_agg(auth.user_json(page.id) order by page.created_at, page.id)
                       from (select u.id, u.created_at from auth.users u where u.deleted_at is null
                              order by u.created_at, u.id
                              limit greatest(p_per_page, 1)
                             offset (greatest(p_page, 1) - 1) * greatest(p_per_page, 1)) page), '[]'),
           (select pg_catalog.count(*) from auth.users u where u.deleted_at is null)
  $$;

-- ---------------------------------------------------------------------------
-- Privileges
-- ---------------------------------------------------------------------------

-- No API role reads or writes an auth or audit table directly, service_role
-- included: the functions above are the way in.  Re-stated on every migrate
-- so that a stray grant does not survive.
revoke all on all tables in schema auth from public, anon, authenticated, service_role;
revoke all on all sequences in schema auth from public, anon, authenticated, service_role;
revoke all on all tables in schema audit from public, anon, authenticated, service_role;
revoke all on all sequences in schema audit from public, anon, authenticated, service_role;

-- PostgreSQL lets PUBLIC execute every new function; take that back.
revoke all on function
  auth.token_hash(text),
  auth.random_token(),
  auth.derive_refresh_token(text, bytea),
  auth.hash_password(text, integer),
  auth.password_matches(text, text),
  auth.write_audit_event(text, uuid, inet, boolean, jsonb),
  auth.end_user_sessions(uuid, uuid),
  auth.sign_up(text, text, jsonb, integer, boolean, inet),
  auth.sign_up_anonymous(jsonb, inet),
  auth.check_password(text, text, inet, integer, interval, interval),
  auth.unlock_user(uuid, uuid, inet),
  auth.open_session(uuid, text, text, inet, text, timestamptz),
  auth.rotate_refresh_token(text, integer, inet),
  auth.sign_out(uuid, text, inet),
  auth.issue_one_time_token(uuid, text, text, interval, inet),
  auth.verify_one_time_token(text, text, inet),
  auth.use_one_time_token(uuid, text, inet),
  auth.random_code(),
  auth.code_hash(uuid, text),
  auth.issue_email_otp(uuid, text, text, interval, inet),
  auth.verify_email_code(text, text, text[], inet, integer),
  auth.create_flow_state(uuid, text, text, text, text, interval, inet),
  auth.issue_auth_code(text, inet),
  auth.exchange_auth_code(text, text, interval, inet),
  auth.reset_password(text, text, integer, inet),
  auth.update_user(uuid, jsonb, text, text, integer, uuid, interval, inet),
  auth.ban_user(uuid, interval, uuid, inet),
  auth.delete_user(uuid, boolean, uuid, inet),
  auth.admin_update_user(uuid, jsonb, uuid, inet, integer),
  auth.user_json(uuid),
  auth.find_user_by_email(text),
  auth.live_sessions(uuid[]),
  auth.session_info(uuid),
  auth.list_users(integer, integer)
from public, anon, authenticated, service_role;

-- The server's entry points, for service_role only.
grant execute on function
  auth.sign_up(text, text, jsonb, integer, boolean, inet),
  auth.sign_up_anonymous(jsonb, inet),
  auth.check_password(text, text, inet, integer, interval, interval),
  auth.unlock_user(uuid, uuid, inet),
  auth.open_session(uuid, text, text, inet, text, timestamptz),
  auth.rotate_refresh_token(text, integer, inet),
  auth.sign_out(uuid, text, inet),
  auth.issue_one_time_token(uuid, text, text, interval, inet),
  auth.verify_one_time_token(text, text, inet),
  auth.issue_email_otp(uuid, text, text, interval, inet),
  auth.verify_email_code(text, text, text[], inet, integer),
  auth.create_flow_state(uuid, text, text, text, text, interval, inet),
  auth.issue_auth_code(text, inet),
  auth.exchange_auth_code(text, text, interval, inet),
  auth.reset_password(text, text, integer, inet),
  auth.update_user(uuid, jsonb, text, text, integer, uuid, interval, inet),
  auth.ban_user(uuid, interval, uuid, inet),
  auth.delete_user(uuid, boolean, uuid, inet),
  auth.admin_update_user(uuid, jsonb, uuid, inet, integer),
  auth.user_json(uuid),
  auth.find_user_by_email(text),
  auth.live_sessions(uuid[]),
  auth.session_info(uuid),
  auth.list_users(integer, integer)
to service_role;
