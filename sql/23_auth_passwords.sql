-- Auth, passwords (conventions: sql/21_auth_common.sql): bcrypt, sign-in
-- with lockout, unlocking, and a new password by recovery token.

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
revoke all on function auth.hash_password(text, integer)
  from public, anon, authenticated, service_role;

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
revoke all on function auth.password_matches(text, text)
  from public, anon, authenticated, service_role;

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
revoke all on function auth.check_password(text, text, inet, integer, interval, interval)
  from public, anon, authenticated, service_role;
grant execute on function auth.check_password(text, text, inet, integer, interval, interval) to service_role;

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
revoke all on function auth.unlock_user(uuid, uuid, inet)
  from public, anon, authenticated, service_role;
grant execute on function auth.unlock_user(uuid, uuid, inet) to service_role;

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
revoke all on function auth.reset_password(text, text, integer, inet)
  from public, anon, authenticated, service_role;
grant execute on function auth.reset_password(text, text, integer, inet) to service_role;
