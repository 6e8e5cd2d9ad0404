-- Dashboard administrators and API keys: the rules, as functions over the
-- tables of the dashboard_schema migration.  Re-applied by every
-- `fluxbase migrate`, so every statement is idempotent.
--
-- The same contract as sql/20_auth.sql: the server calls these as
-- service_role after verifying the caller; they are SECURITY DEFINER with an
-- empty search_path; an outcome the caller must commit (a failed login
-- counts towards lockout, a replayed refresh token ends its session) comes
-- back as a value in an `outcome` or `error` column, never raised.  Every
-- change writes a dashboard.activity_log row and an audit.events row in the
-- transaction that makes it.  Password, token, code and key plaintexts are
-- returned once and never stored or logged.
--
-- It reuses auth's private helpers (auth.token_hash, auth.random_token,
-- auth.hash_password, auth.password_matches): one bcrypt and one token
-- format for the whole server.

-- ---------------------------------------------------------------------------
-- Private helpers
-- ---------------------------------------------------------------------------

-- One event: a dashboard.activity_log row and its audit.events twin.
create or replace function dashboard.record(
  p_action text,
  p_user_id uuid,
  p_ip inet,
  p_success boolean,
  p_details jsonb default '{}',
  p_resource_type text default null,
  p_resource_id text default null,
  p_api_key_id uuid default null
) returns void
  language sql volatile
  set search_path = ''
  as $$
    insert into dashboard.activity_log (user_id, api_key_id, action, resource_type, resource_id, ip, success, details)
    values (p_user_id, p_api_key_id, p_action, p_resource_type, p_resource_id, p_ip, p_success,
            coalesce(p_details, '{}'));
    insert into audit.events (event, actor_id, ip, success, details)
    values ('dashboard.' || p_action, p_user_id, p_ip, p_success,
            coalesce(p_details, '{}')
            || pg_catalog.jsonb_strip_nulls(pg_catalog.jsonb_build_object(
                 'resource_type', p_resource_type, 'resource_id', p_resource_id, 'api_key_id', p_api_key_id)));
  $$;

-- An administrator as the API shows it: never a hash, secret or counter.
create or replace function dashboard.user_json(p_user_id uuid) returns jsonb
  language sql stable security definer
  set search_path = ''
  as $$
    select pg_catalog.jsonb_build_object(
      'id', u.id, 'email', u.email, 'full_name', u.full_name, 'avatar_url', u.avatar_url,
      'role', u.role, 'totp_enabled', u.totp_enabled,
      'email_verified', u.email_verified_at is not null, 'email_verified_at', u.email_verified_at,
      'locked', coalesce(u.locked_until > pg_catalog.now(), false), 'locked_until', u.locked_until,
      'has_password', u.password_hash is not null,
      'last_login_at', u.last_login_at, 'created_at', u.created_at, 'updated_at', u.updated_at)
    from dashboard.users u where u.id = p_user_id and u.deleted_at is null
  $$;

-- A failed password or code: counts towards the lockout; returns true when it locks.
create or replace function dashboard.count_failure(
  p_user_id uuid, p_ip inet, p_max_failures integer, p_lockout interval, p_reason text
) returns boolean
  language plpgsql volatile
  set search_path = ''
  as $$
declare
  account dashboard.users;
  attempts integer;
  now_ timestamptz := pg_catalog.now();
begin
  select * into account from dashboard.users u where u.id = p_user_id for update;
  -- Failures count within one lockout period of the first.
  if account.first_failed_at is null or account.first_failed_at <= now_ - p_lockout then
    attempts := 1;
    update dashboard.users u set failed_attempts = 1, first_failed_at = now_ where u.id = p_user_id;
  else
    attempts := account.failed_attempts + 1;
    update dashboard.users u set failed_attempts = attempts where u.id = p_user_id;
  end if;
  perform dashboard.record('login', p_user_id, p_ip, false,
                           pg_catalog.jsonb_build_object('reason', p_reason, 'failures', attempts));
  if attempts >= p_max_failures then
    update dashboard.users u
       set failed_attempts = 0, first_failed_at = null, locked_until = now_ + p_lockout, updated_at = now_
     where u.id = p_user_id;
    perform dashboard.record('user_locked', p_user_id, p_ip, true,
                             pg_catalog.jsonb_build_object('failures', attempts, 'locked_until', now_ + p_lockout),
                             'dashboard_user', p_user_id::text);
    return true;
  end if;
  return false;
end
$$;

create or replace function dashboard.check_lockout_settings(p_max_failures integer, p_lockout interval)
  returns void
  language plpgsql immutable
  set search_path = ''
  as $$
begin
  if p_max_failures is null or p_max_failures < 1 or p_lockout is null or p_lockout <= interval '0' then
    raise exception 'lockout needs a positive number of failures and duration' using errcode = '22023';
  end if;
end
$$;

-- ---------------------------------------------------------------------------
-- Administrators
-- ---------------------------------------------------------------------------

-- Creates an administrator.  error is null, or email_exists, or (with
-- p_first_only, the open signup) signup_closed once any administrator
-- exists.  Concurrent first signups queue on a transaction lock, so exactly
-- one of them creates the first administrator.  A null password makes an
-- invited administrator who sets one through an invitation link.
create or replace function dashboard.create_user(
  p_email text,
  p_password text,
  p_full_name text default '',
  p_role text default 'dashboard_admin',
  p_password_cost integer default 10,
  p_first_only boolean default false,
  p_actor_id uuid default null,
  p_ip inet default null,
  out user_id uuid,
  out error text
)
  language plpgsql volatile security definer
  set search_path = ''
  as $$
declare
  address text := pg_catalog.lower(pg_catalog.btrim(p_email));
begin
  if address is null or address !~ '^[^@[:space:]]+@[^@[:space:]]+$' then
    raise exception 'an email address is required' using errcode = '22023';
  end if;
  perform pg_catalog.pg_advisory_xact_lock(pg_catalog.hashtext('dashboard.create_user'));
  if p_first_only and exists (select from dashboard.users u where u.deleted_at is null) then
    error := 'signup_closed';
    perform dashboard.record('signup', null, p_ip, false, '{"reason": "signup_closed"}');
    return;
  end if;
  if exists (select from dashboard.users u where pg_catalog.lower(u.email) = address and u.deleted_at is null) then
    error := 'email_exists';
    return;
  end if;
  insert into dashboard.users (email, password_hash, full_name, role, password_changed_at)
  values (address,
          case when p_password is not null then auth.hash_password(p_password, p_password_cost) end,
          coalesce(pg_catalog.btrim(p_full_name), ''), coalesce(p_role, 'dashboard_admin'),
          case when p_password is not null then pg_catalog.now() end)
  returning id into user_id;
  perform dashboard.record(case when p_first_only then 'signup' else 'user_created' end,
                           coalesce(p_actor_id, user_id), p_ip, true,
                           pg_catalog.jsonb_build_object('role', coalesce(p_role, 'dashboard_admin')),
                           'dashboard_user', user_id::text);
end
$$;

-- Checks an email and password, with lockout.  outcome is ok or
-- invalid_credentials (unknown address, wrong password, locked or
-- passwordless account alike: one bcrypt each, so neither the answer nor its
-- time tells which); user_id is set when ok; locked says this failure
-- locked the account.  While locked the password is not even compared, so
-- guessing goes on learning nothing.  The failure is
-- written: the caller must commit.
create or replace function dashboard.check_password(
  p_email text,
  p_password text,
  p_ip inet default null,
  p_max_failures integer default 5,
  p_lockout interval default '15 minutes',
  out user_id uuid,
  out outcome text,
  out totp_enabled boolean,
  out locked boolean
)
  language plpgsql volatile security definer
  set search_path = ''
  as $$
declare
  dummy_hash constant text := '$2a$10$ka4HXmH9a8pZQqCNQfWUKuikmAT9AVew15GePYSIBCv9SBNl9cSKe';
  account dashboard.users;
begin
  perform dashboard.check_lockout_settings(p_max_failures, p_lockout);
  outcome := 'invalid_credentials';
  totp_enabled := false;
  locked := false;
  select * into account from dashboard.users u
   where pg_catalog.lower(u.email) = pg_catalog.lower(pg_catalog.btrim(p_email)) and u.deleted_at is null
   for update;
  if account.id is null or account.password_hash is null then
    perform auth.password_matches(p_password, dummy_hash);
    perform dashboard.record('login', account.id, p_ip, false, '{"reason": "invalid_credentials"}');
    return;
  end if;
  if account.locked_until > pg_catalog.now() then
    perform auth.password_matches(p_password, dummy_hash);
    perform dashboard.record('login', account.id, p_ip, false,
                             pg_catalog.jsonb_build_object('reason', 'locked', 'locked_until', account.locked_until));
    return;
  end if;
  if not auth.password_matches(p_password, account.password_hash) then
    locked := dashboard.count_failure(account.id, p_ip, p_max_failures, p_lockout, 'invalid_password');
    return;
  end if;
  update dashboard.users u set failed_attempts = 0, first_failed_at = null, locked_until = null
   where u.id = account.id and (u.failed_attempts <> 0 or u.locked_until is not null);
  user_id := account.id;
  outcome := 'ok';
  totp_enabled := account.totp_enabled;
end
$$;

-- Opens a session for an administrator the caller has authenticated and
-- returns its first refresh token, in plaintext, once.
create or replace function dashboard.open_session(
  p_user_id uuid,
  p_aal text,
  p_ttl interval,
  p_ip inet default null,
  p_user_agent text default null,
  out session_id uuid,
  out refresh_token text
)
  language plpgsql volatile security definer
  set search_path = ''
  as $$
begin
  if not exists (select from dashboard.users u where u.id = p_user_id and u.deleted_at is null) then
    raise exception 'user_not_found' using errcode = '28000';
  end if;
  refresh_token := auth.random_token();
  insert into dashboard.sessions (user_id, aal, refresh_token_hash, ip, user_agent, expires_at)
  values (p_user_id, p_aal, auth.token_hash(refresh_token), p_ip, p_user_agent, pg_catalog.now() + p_ttl)
  returning id into session_id;
  update dashboard.users u set last_login_at = pg_catalog.now() where u.id = p_user_id;
  perform dashboard.record('login', p_user_id, p_ip, true,
                           pg_catalog.jsonb_build_object('session_id', session_id, 'aal', p_aal),
                           'session', session_id::text);
end
$$;

-- The administrator of a live session, or null: every admin request asks,
-- so a session deleted anywhere stops working at once.
create or replace function dashboard.session_user(p_session_id uuid) returns jsonb
  language sql stable security definer
  set search_path = ''
  as $$
    select dashboard.user_json(s.user_id) || pg_catalog.jsonb_build_object('aal', s.aal)
      from dashboard.sessions s
     where s.id = p_session_id and s.expires_at > pg_catalog.now()
  $$;

-- Exchanges a refresh token for a new one.  error is null, or
-- refresh_token_not_found, or refresh_token_reused (the replaced token came
-- back: it was copied, so the session ends and the caller must commit).
create or replace function dashboard.refresh_session(
  p_token text,
  p_ttl interval,
  p_ip inet default null,
  out session_id uuid,
  out user_id uuid,
  out refresh_token text,
  out error text
)
  language plpgsql volatile security definer
  set search_path = ''
  as $$
declare
  presented text := auth.token_hash(p_token);
  live dashboard.sessions;
begin
  select * into live from dashboard.sessions s
   where s.refresh_token_hash = presented and s.expires_at > pg_catalog.now() for update;
  if live.id is null then
    select * into live from dashboard.sessions s where s.previous_refresh_token_hash = presented for update;
    if live.id is not null then
      delete from dashboard.sessions s where s.id = live.id;
      perform dashboard.record('session_revoked', live.user_id, p_ip, true,
                               '{"reason": "refresh_token_reused"}', 'session', live.id::text);
      error := 'refresh_token_reused';
    else
      error := 'refresh_token_not_found';
    end if;
    return;
  end if;
  refresh_token := auth.random_token();
  update dashboard.sessions s
     set previous_refresh_token_hash = s.refresh_token_hash, refresh_token_hash = auth.token_hash(refresh_token),
         refreshed_at = pg_catalog.now(), expires_at = pg_catalog.now() + p_ttl
   where s.id = live.id;
  session_id := live.id;
  user_id := live.user_id;
  perform dashboard.record('token_refreshed', live.user_id, p_ip, true, '{}', 'session', live.id::text);
end
$$;

-- Ends one session of an administrator (logout, or revoking one from the
-- session list).  Returns false when there was no such session of theirs.
create or replace function dashboard.end_session(p_user_id uuid, p_session_id uuid, p_ip inet default null)
  returns boolean
  language plpgsql volatile security definer
  set search_path = ''
  as $$
begin
  delete from dashboard.sessions s where s.id = p_session_id and s.user_id = p_user_id;
  if not found then
    return false;
  end if;
  perform dashboard.record('logout', p_user_id, p_ip, true, '{}', 'session', p_session_id::text);
  return true;
end
$$;

create or replace function dashboard.list_sessions(p_user_id uuid) returns jsonb
  language sql stable security definer
  set search_path = ''
  as $$
    select coalesce(pg_catalog.jsonb_agg(pg_catalog.jsonb_build_object(
             'id', s.id, 'aal', s.aal, 'ip', s.ip, 'user_agent', s.user_agent, 'created_at', s.created_at,
             'refreshed_at', s.refreshed_at, 'expires_at', s.expires_at) order by s.created_at desc), '[]')
      from dashboard.sessions s where s.user_id = p_user_id and s.expires_at > pg_catalog.now()
  $$;

-- Changes a password after checking the current one; ends the
-- administrator's other sessions.  outcome: ok or invalid_credentials (a
-- wrong current password counts towards the lockout: commit).
create or replace function dashboard.change_password(
  p_user_id uuid,
  p_current text,
  p_new text,
  p_password_cost integer,
  p_keep_session_id uuid,
  p_ip inet default null,
  p_max_failures integer default 5,
  p_lockout interval default '15 minutes'
) returns text
  language plpgsql volatile security definer
  set search_path = ''
  as $$
declare
  account dashboard.users;
begin
  select * into account from dashboard.users u where u.id = p_user_id and u.deleted_at is null for update;
  if account.id is null or not auth.password_matches(p_current, account.password_hash) then
    if account.id is not null then
      perform dashboard.count_failure(account.id, p_ip, p_max_failures, p_lockout, 'invalid_current_password');
    end if;
    return 'invalid_credentials';
  end if;
  update dashboard.users u
     set password_hash = auth.hash_password(p_new, p_password_cost), password_changed_at = pg_catalog.now(),
         updated_at = pg_catalog.now()
   where u.id = p_user_id;
  delete from dashboard.sessions s where s.user_id = p_user_id and s.id is distinct from p_keep_session_id;
  perform dashboard.record('password_changed', p_user_id, p_ip, true, '{}', 'dashboard_user', p_user_id::text);
  return 'ok';
end
$$;

create or replace function dashboard.update_profile(p_user_id uuid, p_full_name text, p_avatar_url text,
                                                    p_ip inet default null)
  returns jsonb
  language plpgsql volatile security definer
  set search_path = ''
  as $$
begin
  update dashboard.users u
     set full_name = coalesce(pg_catalog.btrim(p_full_name), u.full_name),
         avatar_url = coalesce(p_avatar_url, u.avatar_url), updated_at = pg_catalog.now()
   where u.id = p_user_id and u.deleted_at is null;
  perform dashboard.record('profile_updated', p_user_id, p_ip, true, '{}', 'dashboard_user', p_user_id::text);
  return dashboard.user_json(p_user_id);
end
$$;

create or replace function dashboard.list_users() returns jsonb
  language sql stable security definer
  set search_path = ''
  as $$
    select coalesce(pg_catalog.jsonb_agg(dashboard.user_json(u.id) order by u.created_at), '[]')
      from dashboard.users u where u.deleted_at is null
  $$;

create or replace function dashboard.unlock_user(p_user_id uuid, p_actor_id uuid, p_ip inet default null)
  returns boolean
  language plpgsql volatile security definer
  set search_path = ''
  as $$
begin
  update dashboard.users u
     set failed_attempts = 0, first_failed_at = null, locked_until = null, updated_at = pg_catalog.now()
   where u.id = p_user_id and u.deleted_at is null;
  if not found then
    return false;
  end if;
  perform dashboard.record('user_unlocked', p_actor_id, p_ip, true, '{}', 'dashboard_user', p_user_id::text);
  return true;
end
$$;

-- Deletes an administrator (soft: the address is freed, the log keeps the
-- id).  outcome: ok, not_found, or last_admin (an instance always keeps one).
create or replace function dashboard.delete_user(p_user_id uuid, p_actor_id uuid, p_ip inet default null)
  returns text
  language plpgsql volatile security definer
  set search_path = ''
  as $$
begin
  perform pg_catalog.pg_advisory_xact_lock(pg_catalog.hashtext('dashboard.create_user'));
  if not exists (select from dashboard.users u where u.id = p_user_id and u.deleted_at is null) then
    return 'not_found';
  end if;
  if not exists (select from dashboard.users u
                  where u.id <> p_user_id and u.deleted_at is null and u.role = 'dashboard_admin') then
    return 'last_admin';
  end if;
  update dashboard.users u
     set deleted_at = pg_catalog.now(), password_hash = null, totp_secret_encrypted = null, totp_enabled = false
   where u.id = p_user_id;
  delete from dashboard.sessions s where s.user_id = p_user_id;
  delete from dashboard.backup_codes c where c.user_id = p_user_id;
  perform dashboard.record('user_deleted', p_actor_id, p_ip, true, '{}', 'dashboard_user', p_user_id::text);
  return 'ok';
end
$$;

-- ---------------------------------------------------------------------------
-- Mail links: password reset, address verification, invitation
-- ---------------------------------------------------------------------------

-- Issues a link token for an administrator, replacing any live one of its
-- kind; returns the plaintext once (null for an unknown administrator).
create or replace function dashboard.issue_token(
  p_user_id uuid, p_token_type text, p_lifetime interval, p_ip inet default null
) returns text
  language plpgsql volatile security definer
  set search_path = ''
  as $$
declare
  token text := auth.random_token();
begin
  if not exists (select from dashboard.users u where u.id = p_user_id and u.deleted_at is null) then
    return null;
  end if;
  delete from dashboard.one_time_tokens t
   where t.user_id = p_user_id and t.token_type = p_token_type and t.consumed_at is null;
  insert into dashboard.one_time_tokens (user_id, token_type, token_hash, expires_at)
  values (p_user_id, p_token_type, auth.token_hash(token), pg_catalog.now() + p_lifetime);
  perform dashboard.record(p_token_type || '_sent', p_user_id, p_ip, true, '{}', 'dashboard_user', p_user_id::text);
  return token;
end
$$;

create or replace function dashboard.find_user_by_email(p_email text) returns uuid
  language sql stable security definer
  set search_path = ''
  as $$
    select u.id from dashboard.users u
     where pg_catalog.lower(u.email) = pg_catalog.lower(pg_catalog.btrim(p_email)) and u.deleted_at is null
  $$;

-- Uses a link token.  For password_reset and invitation p_new_password is
-- set (all sessions end, any lockout is lifted: the mailbox was proven);
-- for email_verification the address is marked verified.  error is null or
-- token_not_found (unknown, used, expired or of another kind alike).
create or replace function dashboard.use_token(
  p_token text,
  p_token_type text,
  p_new_password text default null,
  p_password_cost integer default 10,
  p_ip inet default null,
  out user_id uuid,
  out error text
)
  language plpgsql volatile security definer
  set search_path = ''
  as $$
declare
  found_token dashboard.one_time_tokens;
begin
  update dashboard.one_time_tokens t set consumed_at = pg_catalog.now()
   where t.token_hash = auth.token_hash(p_token) and t.token_type = p_token_type
     and t.consumed_at is null and t.expires_at > pg_catalog.now()
  returning * into found_token;
  if found_token.id is null then
    error := 'token_not_found';
    perform dashboard.record(p_token_type || '_used', null, p_ip, false, '{"reason": "token_not_found"}');
    return;
  end if;
  user_id := found_token.user_id;
  if p_token_type in ('password_reset', 'invitation') then
    if p_new_password is null then
      raise exception 'a new password is required' using errcode = '22023';
    end if;
    update dashboard.users u
       set password_hash = auth.hash_password(p_new_password, p_password_cost),
           password_changed_at = pg_catalog.now(), failed_attempts = 0, first_failed_at = null,
           locked_until = null, updated_at = pg_catalog.now(),
           -- Only the owner of the mailbox can follow the link.
           email_verified_at = coalesce(u.email_verified_at, pg_catalog.now())
     where u.id = user_id;
    delete from dashboard.sessions s where s.user_id = found_token.user_id;
  else
    update dashboard.users u set email_verified_at = coalesce(u.email_verified_at, pg_catalog.now())
     where u.id = user_id;
  end if;
  perform dashboard.record(p_token_type || '_used', user_id, p_ip, true, '{}', 'dashboard_user', user_id::text);
end
$$;

-- ---------------------------------------------------------------------------
-- Two-factor authentication (TOTP)
--
-- The server holds the encryption key and computes which 30-second time
-- step a code belongs to (pyotp); the database decides, atomically, whether
-- that step may still be used: a step is accepted only if it is later than
-- the last one accepted, by an UPDATE ... WHERE totp_last_step < step, so of
-- concurrent uses of one code exactly one succeeds.
-- ---------------------------------------------------------------------------

-- Stores a new, not yet enabled secret (setup).  error: totp_already_enabled.
create or replace function dashboard.set_totp_secret(p_user_id uuid, p_secret_encrypted bytea, p_ip inet default null)
  returns text
  language plpgsql volatile security definer
  set search_path = ''
  as $$
begin
  update dashboard.users u set totp_secret_encrypted = p_secret_encrypted, updated_at = pg_catalog.now()
   where u.id = p_user_id and u.deleted_at is null and not u.totp_enabled;
  if not found then
    return 'totp_already_enabled';
  end if;
  perform dashboard.record('totp_setup', p_user_id, p_ip, true, '{}', 'dashboard_user', p_user_id::text);
  return null;
end
$$;

create or replace function dashboard.totp_secret(p_user_id uuid) returns bytea
  language sql stable security definer
  set search_path = ''
  as $$ select u.totp_secret_encrypted from dashboard.users u where u.id = p_user_id and u.deleted_at is null $$;

-- Takes a time step for the administrator: true when it is later than any
-- taken before (the code is used up), false for a replay.
create or replace function dashboard.take_totp_step(p_user_id uuid, p_step bigint) returns boolean
  language plpgsql volatile
  set search_path = ''
  as $$
begin
  update dashboard.users u set totp_last_step = p_step
   where u.id = p_user_id and (u.totp_last_step is null or u.totp_last_step < p_step);
  return found;
end
$$;

-- Uses one backup code: true once per code.
create or replace function dashboard.take_backup_code(p_user_id uuid, p_code text) returns boolean
  language plpgsql volatile
  set search_path = ''
  as $$
begin
  update dashboard.backup_codes c set used_at = pg_catalog.now()
   where c.user_id = p_user_id and c.used_at is null
     and c.code_hash = auth.token_hash(pg_catalog.lower(pg_catalog.regexp_replace(p_code, '[^0-9A-Za-z]', '', 'g')));
  return found;
end
$$;

-- Ten fresh backup codes (xxxxx-xxxxx, 50 random bits each), replacing any
-- earlier ones; the plaintexts are returned once.
create or replace function dashboard.new_backup_codes(p_user_id uuid) returns text[]
  language plpgsql volatile
  set search_path = ''
  as $$
declare
  codes text[] := '{}';
  code text;
begin
  delete from dashboard.backup_codes c where c.user_id = p_user_id;
  for i in 1..10 loop
    code := pg_catalog.lower(pg_catalog.translate(
              pg_catalog.encode(extensions.gen_random_bytes(10), 'base64'), '+/=', ''));
    code := pg_catalog.substr(code, 1, 5) || '-' || pg_catalog.substr(code, 6, 5);
    insert into dashboard.backup_codes (user_id, code_hash)
    values (p_user_id, auth.token_hash(pg_catalog.replace(code, '-', '')));
    codes := codes || code;
  end loop;
  return codes;
end
$$;

-- Enables 2FA with a code of the stored secret (its step, as the server
-- computed it; null when the code matched no step).  Returns the backup
-- codes, or error invalid_code / totp_not_set_up / totp_already_enabled.
create or replace function dashboard.enable_totp(
  p_user_id uuid, p_step bigint, p_ip inet default null, out backup_codes text[], out error text
)
  language plpgsql volatile security definer
  set search_path = ''
  as $$
declare
  account dashboard.users;
begin
  select * into account from dashboard.users u where u.id = p_user_id and u.deleted_at is null for update;
  if account.totp_enabled then
    error := 'totp_already_enabled';
  elsif account.totp_secret_encrypted is null then
    error := 'totp_not_set_up';
  elsif p_step is null or not dashboard.take_totp_step(p_user_id, p_step) then
    error := 'invalid_code';
  end if;
  if error is not null then
    perform dashboard.record('totp_enabled', p_user_id, p_ip, false, pg_catalog.jsonb_build_object('reason', error));
    return;
  end if;
  update dashboard.users u set totp_enabled = true, updated_at = pg_catalog.now() where u.id = p_user_id;
  backup_codes := dashboard.new_backup_codes(p_user_id);
  perform dashboard.record('totp_enabled', p_user_id, p_ip, true, '{}', 'dashboard_user', p_user_id::text);
end
$$;

-- Disables 2FA with a current code (its step) or a backup code.  error:
-- null, invalid_code (counts towards the lockout: commit), totp_not_enabled.
create or replace function dashboard.disable_totp(
  p_user_id uuid, p_step bigint, p_backup_code text, p_ip inet default null,
  p_max_failures integer default 5, p_lockout interval default '15 minutes'
) returns text
  language plpgsql volatile security definer
  set search_path = ''
  as $$
declare
  account dashboard.users;
begin
  select * into account from dashboard.users u where u.id = p_user_id and u.deleted_at is null for update;
  if not account.totp_enabled then
    return 'totp_not_enabled';
  end if;
  if not ((p_step is not null and dashboard.take_totp_step(p_user_id, p_step))
          or (p_backup_code is not null and dashboard.take_backup_code(p_user_id, p_backup_code))) then
    perform dashboard.count_failure(p_user_id, p_ip, p_max_failures, p_lockout, 'invalid_code');
    perform dashboard.record('totp_disabled', p_user_id, p_ip, false, '{"reason": "invalid_code"}');
    return 'invalid_code';
  end if;
  update dashboard.users u
     set totp_enabled = false, totp_secret_encrypted = null, updated_at = pg_catalog.now()
   where u.id = p_user_id;
  delete from dashboard.backup_codes c where c.user_id = p_user_id;
  perform dashboard.record('totp_disabled', p_user_id, p_ip, true, '{}', 'dashboard_user', p_user_id::text);
  return null;
end
$$;

-- The second step of a 2FA login starts here: a challenge good for p_ttl.
create or replace function dashboard.start_mfa_challenge(p_user_id uuid, p_ttl interval, p_ip inet default null)
  returns uuid
  language plpgsql volatile security definer
  set search_path = ''
  as $$
declare
  challenge_id uuid;
begin
  insert into dashboard.mfa_challenges (user_id, ip, expires_at)
  values (p_user_id, p_ip, pg_catalog.now() + p_ttl)
  returning id into challenge_id;
  perform dashboard.record('mfa_challenge', p_user_id, p_ip, true, '{}', 'mfa_challenge', challenge_id::text);
  return challenge_id;
end
$$;

-- The administrator a live challenge is for, and their encrypted secret, so
-- the server can find the code's time step.  Null when the challenge is
-- unknown, used, expired or out of attempts.
create or replace function dashboard.mfa_challenge_user(p_challenge_id uuid, p_max_attempts integer default 5,
                                                        out user_id uuid, out totp_secret_encrypted bytea)
  language sql stable security definer
  set search_path = ''
  as $$
    select u.id, u.totp_secret_encrypted
      from dashboard.mfa_challenges c join dashboard.users u on u.id = c.user_id
     where c.id = p_challenge_id and c.consumed_at is null and c.expires_at > pg_catalog.now()
       and c.attempts < p_max_attempts and u.deleted_at is null and u.totp_enabled
  $$;

-- Completes a 2FA login with a code's time step (null when the code matched
-- none) or a backup code.  outcome: ok (session_id and refresh_token set),
-- challenge_not_found, code_already_used (a replay: refused, but not a
-- guess, so it does not count towards the lockout), invalid_code (counts on
-- the challenge and towards the lockout), locked.  Commit in every case.
create or replace function dashboard.complete_mfa_challenge(
  p_challenge_id uuid,
  p_step bigint,
  p_backup_code text,
  p_session_ttl interval,
  p_ip inet default null,
  p_user_agent text default null,
  p_max_attempts integer default 5,
  p_max_failures integer default 5,
  p_lockout interval default '15 minutes',
  out outcome text,
  out user_id uuid,
  out session_id uuid,
  out refresh_token text,
  out locked boolean
)
  language plpgsql volatile security definer
  set search_path = ''
  as $$
declare
  challenge dashboard.mfa_challenges;
  account dashboard.users;
begin
  locked := false;
  select * into challenge from dashboard.mfa_challenges c where c.id = p_challenge_id for update;
  if challenge.id is null or challenge.consumed_at is not null or challenge.expires_at <= pg_catalog.now()
     or challenge.attempts >= p_max_attempts then
    outcome := 'challenge_not_found';
    perform dashboard.record('mfa_verify', challenge.user_id, p_ip, false, '{"reason": "challenge_not_found"}');
    return;
  end if;
  select * into account from dashboard.users u where u.id = challenge.user_id and u.deleted_at is null for update;
  if account.id is null or not account.totp_enabled then
    outcome := 'challenge_not_found';
    return;
  end if;
  user_id := account.id;
  if account.locked_until > pg_catalog.now() then
    outcome := 'locked';
    perform dashboard.record('mfa_verify', user_id, p_ip, false, '{"reason": "locked"}');
    return;
  end if;
  if p_step is not null then
    if dashboard.take_totp_step(user_id, p_step) then
      outcome := 'ok';
    else
      outcome := 'code_already_used';
    end if;
  elsif p_backup_code is not null and dashboard.take_backup_code(user_id, p_backup_code) then
    outcome := 'ok';
  else
    outcome := 'invalid_code';
  end if;
  if outcome <> 'ok' then
    update dashboard.mfa_challenges c set attempts = c.attempts + 1 where c.id = p_challenge_id;
    if outcome = 'invalid_code' then
      locked := dashboard.count_failure(user_id, p_ip, p_max_failures, p_lockout, 'invalid_code');
    else
      perform dashboard.record('mfa_verify', user_id, p_ip, false, pg_catalog.jsonb_build_object('reason', outcome));
    end if;
    return;
  end if;
  update dashboard.mfa_challenges c set consumed_at = pg_catalog.now() where c.id = p_challenge_id;
  update dashboard.users u set failed_attempts = 0, first_failed_at = null where u.id = user_id;
  perform dashboard.record('mfa_verify', user_id, p_ip, true,
                           pg_catalog.jsonb_build_object('method', case when p_step is null then 'backup_code' else 'totp' end));
  select s.session_id, s.refresh_token into session_id, refresh_token
    from dashboard.open_session(user_id, 'aal2', p_session_ttl, p_ip, p_user_agent) s;
end
$$;

-- ---------------------------------------------------------------------------
-- API keys
--
-- Every change sends NOTIFY fluxbase_api_keys on commit: each server process
-- reloads its key table at once, and on an interval in case it missed it.
-- ---------------------------------------------------------------------------

create or replace function dashboard.api_key_json(p_id uuid) returns jsonb
  language sql stable security definer
  set search_path = ''
  as $$
    select pg_catalog.jsonb_build_object(
      'id', k.id, 'name', k.name, 'key_prefix', k.key_prefix, 'scopes', k.scopes, 'role', k.role,
      'rate_limit_per_minute', k.rate_limit_per_minute, 'expires_at', k.expires_at,
      'revoked_at', k.revoked_at, 'last_used_at', k.last_used_at, 'created_by', k.created_by,
      'created_at', k.created_at, 'updated_at', k.updated_at)
      from dashboard.api_keys k where k.id = p_id
  $$;

create or replace function dashboard.new_api_key() returns text
  language sql volatile
  set search_path = ''
  as $$ select 'fbk_' || auth.random_token() $$;

-- Creates a key; returns its id and, once, the key itself.
create or replace function dashboard.create_api_key(
  p_name text,
  p_scopes text[],
  p_role text,
  p_rate_limit_per_minute integer,
  p_expires_at timestamptz,
  p_actor_id uuid,
  p_ip inet default null,
  out id uuid,
  out key text
)
  language plpgsql volatile security definer
  set search_path = ''
  as $$
begin
  if p_expires_at is not null and p_expires_at <= pg_catalog.now() then
    raise exception 'expires_at must be in the future' using errcode = '22023';
  end if;
  key := dashboard.new_api_key();
  insert into dashboard.api_keys (name, key_prefix, key_hash, scopes, role, rate_limit_per_minute, expires_at, created_by)
  values (pg_catalog.btrim(p_name), pg_catalog.substr(key, 1, 12), auth.token_hash(key),
          (select pg_catalog.array_agg(distinct s order by s) from pg_catalog.unnest(p_scopes) s),
          coalesce(p_role, 'anon'), coalesce(p_rate_limit_per_minute, 1000), p_expires_at, p_actor_id)
  returning api_keys.id into id;
  perform dashboard.record('api_key_created', p_actor_id, p_ip, true,
                           pg_catalog.jsonb_build_object('name', pg_catalog.btrim(p_name), 'scopes', p_scopes,
                                                         'role', coalesce(p_role, 'anon')),
                           'api_key', id::text);
  perform pg_catalog.pg_notify('fluxbase_api_keys', id::text);
end
$$;

-- A new secret for a live key (same id, name, scopes); the old one stops at once.
create or replace function dashboard.regenerate_api_key(p_id uuid, p_actor_id uuid, p_ip inet default null)
  returns text
  language plpgsql volatile security definer
  set search_path = ''
  as $$
declare
  key text := dashboard.new_api_key();
begin
  update dashboard.api_keys k
     set key_hash = auth.token_hash(key), key_prefix = pg_catalog.substr(key, 1, 12), updated_at = pg_catalog.now()
   where k.id = p_id and k.revoked_at is null;
  if not found then
    return null;
  end if;
  perform dashboard.record('api_key_regenerated', p_actor_id, p_ip, true, '{}', 'api_key', p_id::text);
  perform pg_catalog.pg_notify('fluxbase_api_keys', p_id::text);
  return key;
end
$$;

create or replace function dashboard.revoke_api_key(p_id uuid, p_actor_id uuid, p_ip inet default null)
  returns boolean
  language plpgsql volatile security definer
  set search_path = ''
  as $$
begin
  update dashboard.api_keys k set revoked_at = pg_catalog.now(), updated_at = pg_catalog.now()
   where k.id = p_id and k.revoked_at is null;
  if not found then
    return false;
  end if;
  perform dashboard.record('api_key_revoked', p_actor_id, p_ip, true, '{}', 'api_key', p_id::text);
  perform pg_catalog.pg_notify('fluxbase_api_keys', p_id::text);
  return true;
end
$$;

create or replace function dashboard.delete_api_key(p_id uuid, p_actor_id uuid, p_ip inet default null)
  returns boolean
  language plpgsql volatile security definer
  set search_path = ''
  as $$
begin
  delete from dashboard.api_keys k where k.id = p_id;
  if not found then
    return false;
  end if;
  perform dashboard.record('api_key_deleted', p_actor_id, p_ip, true, '{}', 'api_key', p_id::text);
  perform pg_catalog.pg_notify('fluxbase_api_keys', p_id::text);
  return true;
end
$$;

-- Changes a key's name, scopes, rate limit or expiry (a null leaves it as
-- it is; p_clear_expiry removes the expiry).  Returns the key, or null.
create or replace function dashboard.update_api_key(
  p_id uuid, p_name text, p_scopes text[], p_rate_limit_per_minute integer, p_expires_at timestamptz,
  p_clear_expiry boolean, p_actor_id uuid, p_ip inet default null
) returns jsonb
  language plpgsql volatile security definer
  set search_path = ''
  as $$
begin
  update dashboard.api_keys k
     set name = coalesce(pg_catalog.btrim(p_name), k.name),
         scopes = coalesce((select pg_catalog.array_agg(distinct s order by s) from pg_catalog.unnest(p_scopes) s),
                           k.scopes),
         rate_limit_per_minute = coalesce(p_rate_limit_per_minute, k.rate_limit_per_minute),
         expires_at = case when p_clear_expiry then null else coalesce(p_expires_at, k.expires_at) end,
         updated_at = pg_catalog.now()
   where k.id = p_id;
  if not found then
    return null;
  end if;
  perform dashboard.record('api_key_updated', p_actor_id, p_ip, true,
                           pg_catalog.jsonb_strip_nulls(pg_catalog.jsonb_build_object(
                             'name', p_name, 'scopes', p_scopes, 'rate_limit_per_minute', p_rate_limit_per_minute)),
                           'api_key', p_id::text);
  perform pg_catalog.pg_notify('fluxbase_api_keys', p_id::text);
  return dashboard.api_key_json(p_id);
end
$$;

create or replace function dashboard.list_api_keys() returns jsonb
  language sql stable security definer
  set search_path = ''
  as $$
    select coalesce(pg_catalog.jsonb_agg(dashboard.api_key_json(k.id) order by k.created_at), '[]')
      from dashboard.api_keys k
  $$;

-- What a server process needs to verify keys: the live ones, by digest.
create or replace function dashboard.active_api_keys()
  returns table (id uuid, key_hash text, role text, scopes text[], rate_limit_per_minute integer,
                 expires_at timestamptz, created_by uuid)
  language sql stable security definer
  set search_path = ''
  as $$
    select k.id, k.key_hash, k.role, k.scopes, k.rate_limit_per_minute, k.expires_at, k.created_by
      from dashboard.api_keys k
     where k.revoked_at is null and (k.expires_at is null or k.expires_at > pg_catalog.now())
  $$;

-- Last-used times, written in batches by each process (never per request).
create or replace function dashboard.touch_api_keys(p_ids uuid[], p_times timestamptz[]) returns void
  language sql volatile security definer
  set search_path = ''
  as $$
    update dashboard.api_keys k set last_used_at = greatest(k.last_used_at, t.at)
      from rows from (pg_catalog.unnest(p_ids), pg_catalog.unnest(p_times)) as t(id, at)
     where k.id = t.id
  $$;

-- ---------------------------------------------------------------------------
-- The activity log
-- ---------------------------------------------------------------------------

-- An event the server observed itself (an SQL run, a policy change): the same
-- two rows as the functions above write.
create or replace function dashboard.log_event(
  p_action text, p_user_id uuid, p_ip inet, p_success boolean, p_details jsonb,
  p_resource_type text default null, p_resource_id text default null, p_api_key_id uuid default null
) returns void
  language sql volatile security definer
  set search_path = ''
  as $$ select dashboard.record(p_action, p_user_id, p_ip, p_success, p_details, p_resource_type, p_resource_id,
                                p_api_key_id) $$;

-- The log, newest first, with optional filters.
create or replace function dashboard.list_activity(
  p_action text default null, p_user_id uuid default null, p_resource_type text default null,
  p_success boolean default null, p_since timestamptz default null, p_until timestamptz default null,
  p_limit integer default 100, p_offset integer default 0
) returns jsonb
  language sql stable security definer
  set search_path = ''
  as $$
    select coalesce(pg_catalog.jsonb_agg(pg_catalog.to_jsonb(a) order by a.at desc, a.id desc), '[]')
      from (select l.id, l.at, l.user_id, l.api_key_id, l.action, l.resource_type, l.resource_id, l.ip,
                   l.success, l.details
              from dashboard.activity_log l
             where (p_action is null or l.action = p_action)
               and (p_user_id is null or l.user_id = p_user_id)
               and (p_resource_type is null or l.resource_type = p_resource_type)
               and (p_success is null or l.success = p_success)
               and (p_since is null or l.at >= p_since)
               and (p_until is null or l.at < p_until)
             order by l.at desc, l.id desc
             limit least(greatest(coalesce(p_limit, 100), 1), 1000) offset greatest(coalesce(p_offset, 0), 0)) a
  $$;

-- ---------------------------------------------------------------------------
-- Privileges: every function of the schema is closed to everyone, then the
-- server's entry points are opened to service_role.  The private helpers
-- (record, count_failure, take_totp_step, ...) stay closed.
-- ---------------------------------------------------------------------------

revoke all on all functions in schema dashboard from public, anon, authenticated, service_role;

grant usage on schema dashboard to service_role;
grant execute on function
  dashboard.user_json(uuid),
  dashboard.create_user(text, text, text, text, integer, boolean, uuid, inet),
  dashboard.check_password(text, text, inet, integer, interval),
  dashboard.open_session(uuid, text, interval, inet, text),
  dashboard.session_user(uuid),
  dashboard.refresh_session(text, interval, inet),
  dashboard.end_session(uuid, uuid, inet),
  dashboard.list_sessions(uuid),
  dashboard.change_password(uuid, text, text, integer, uuid, inet, integer, interval),
  dashboard.update_profile(uuid, text, text, inet),
  dashboard.list_users(),
  dashboard.unlock_user(uuid, uuid, inet),
  dashboard.delete_user(uuid, uuid, inet),
  dashboard.issue_token(uuid, text, interval, inet),
  dashboard.find_user_by_email(text),
  dashboard.use_token(text, text, text, integer, inet),
  dashboard.set_totp_secret(uuid, bytea, inet),
  dashboard.totp_secret(uuid),
  dashboard.enable_totp(uuid, bigint, inet),
  dashboard.disable_totp(uuid, bigint, text, inet, integer, interval),
  dashboard.start_mfa_challenge(uuid, interval, inet),
  dashboard.mfa_challenge_user(uuid, integer),
  dashboard.complete_mfa_challenge(uuid, bigint, text, interval, inet, text, integer, integer, interval),
  dashboard.api_key_json(uuid),
  dashboard.create_api_key(text, text[], text, integer, timestamptz, uuid, inet),
  dashboard.regenerate_api_key(uuid, uuid, inet),
  dashboard.revoke_api_key(uuid, uuid, inet),
  dashboard.delete_api_key(uuid, uuid, inet),
  dashboard.update_api_key(uuid, text, text[], integer, timestamptz, boolean, uuid, inet),
  dashboard.list_api_keys(),
  dashboard.active_api_keys(),
  dashboard.touch_api_keys(uuid[], timestamptz[]),
  dashboard.log_event(text, uuid, inet, boolean, jsonb, text, text, uuid),
  dashboard.list_activity(text, uuid, text, boolean, timestamptz, timestamptz, integer, integer)
to service_role;
