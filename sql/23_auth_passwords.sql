-- Auth, passwords (conventions: sql/21_auth_common.sql): bcrypt, sign-in
-- with lockout per account and source (the auth_sign_in_sources
-- migration), its state and unlocking, and a new password by recovery token.

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

-- How long the n-th lock of one scope lasts: p_base, doubling with each
-- further lock, never beyond p_max.
create or replace function auth.lock_for(p_base interval, p_max interval, p_lock_count integer) returns interval
  language sql immutable strict
  set search_path = ''
  as $$ select least(p_base * pg_catalog.power(2, least(greatest(p_lock_count, 1) - 1, 30)), p_max) $$;
revoke all on function auth.lock_for(interval, interval, integer) from public, anon, authenticated, service_role;

-- The signature before sign-in sources: replaced by the one below.
drop function if exists auth.check_password(text, text, inet, integer, interval, interval);

-- Checks an email and password, with lockout.  outcome is one of
--   ok, invalid_credentials, locked, email_not_confirmed, user_banned
-- and user_id is set unless it is invalid_credentials.  Unknown address,
-- wrong password and a lock each cost one bcrypt, and the server answers
-- invalid_credentials for all three, so none tells an address exists; the
-- last two only come after the right password, as in GoTrue.
--
-- Lockout protects the owner instead of locking them out.  Failures are
-- counted per account and source (the client IP; auth.sign_in_sources):
-- p_max_failures within p_failure_window lock that source out of that
-- account, and only it; the owner signing in from elsewhere is not
-- affected.  Failures are also counted per account, from every source:
-- p_account_max_failures (more than one source can reach, since a locked
-- source's attempts are not compared, let alone counted) start the
-- account's backoff, which stops only sources that have never signed in to
-- the account (within 90 days): a spread-out guesser is slowed, the owner's
-- usual devices are not.  Each lock of the same scope lasts twice the one
-- before (auth.lock_for), at most p_max_lockout; lock_scope says which lock
-- this attempt started, and every lock writes a user_locked audit row.
-- While locked the password is not even compared, and attempts do not
-- extend the lock.  A success ends its source's streak and lock and makes
-- the source known; the account's backoff ends by itself, on
-- auth.unlock_user or on a password reset.  The caller must commit.
create or replace function auth.check_password(
  p_email text,
  p_password text,
  p_ip inet default null,
  p_max_failures integer default 5,
  p_account_max_failures integer default 20,
  p_failure_window interval default '15 minutes',
  p_lockout interval default '15 minutes',
  p_max_lockout interval default '24 hours',
  out user_id uuid,
  out outcome text,
  out lock_scope text
)
  language plpgsql volatile security definer
  set search_path = ''
  as $$
declare
  -- A valid cost-10 hash compared when there is nothing real to compare, so
  -- that every path costs one bcrypt.
  dummy_hash constant text := '$2a$10$ka4HXmH9a8pZQqCNQfWUKuikmAT9AVew15GePYSIBCv9SBNl9cSKe';
  known_for constant interval := '90 days';
  source_ip inet := coalesce(p_ip, '0.0.0.0'::inet);
  account auth.users;
  origin auth.sign_in_sources;
  known boolean;
  attempts integer;
  window_start timestamptz;
  until timestamptz;
  now_ timestamptz := pg_catalog.now();
begin
  if p_max_failures is null or p_max_failures < 1
     or p_account_max_failures is null or p_account_max_failures < 1
     or p_failure_window is null or p_failure_window <= interval '0'
     or p_lockout is null or p_lockout <= interval '0'
     or p_max_lockout is null or p_max_lockout < p_lockout then
    raise exception 'lockout needs positive failure counts, window and durations (max at least the first)'
      using errcode = '22023';
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

  -- Sources gone quiet for long are forgotten (a known one becomes unknown again).
  delete from auth.sign_in_sources s
   where s.user_id = account.id and s.updated_at < now_ - known_for
     and (s.locked_until is null or s.locked_until <= now_);
  select * into origin from auth.sign_in_sources s
   where s.user_id = account.id and s.source = source_ip for update;
  known := coalesce(origin.last_sign_in_at > now_ - known_for, false);

  if origin.locked_until > now_ or (account.locked_until > now_ and not known) then
    perform auth.password_matches(p_password, dummy_hash);
    outcome := 'locked';
    perform auth.write_audit_event('login', account.id, p_ip, false,
      pg_catalog.jsonb_build_object(
        'reason', 'locked',
        'scope', case when origin.locked_until > now_ then 'source' else 'account' end,
        'locked_until', case when origin.locked_until > now_ then origin.locked_until else account.locked_until end));
    return;
  end if;

  if not auth.password_matches(p_password, account.encrypted_password) then
    outcome := 'invalid_credentials';
    -- This source's streak.
    if origin.first_failed_at is null or origin.first_failed_at <= now_ - p_failure_window then
      attempts := 1;
      window_start := now_;
    else
      attempts := origin.failed_attempts + 1;
      window_start := origin.first_failed_at;
    end if;
    if attempts >= p_max_failures then
      until := now_ + auth.lock_for(p_lockout, p_max_lockout, coalesce(origin.lock_count, 0) + 1);
      insert into auth.sign_in_sources as s (user_id, source, failed_attempts, first_failed_at, locked_until,
                                              lock_count, updated_at)
      values (account.id, source_ip, 0, null, until, 1, now_)
      on conflict on constraint sign_in_sources_pkey do update
        set failed_attempts = 0, first_failed_at = null, locked_until = until,
            lock_count = s.lock_count + 1, updated_at = now_;
      lock_scope := 'source';
      perform auth.write_audit_event('user_locked', account.id, p_ip, true,
        pg_catalog.jsonb_build_object('scope', 'source', 'source', source_ip, 'failures', attempts,
                                      'lock_count', coalesce(origin.lock_count, 0) + 1, 'locked_until', until));
    else
      insert into auth.sign_in_sources as s (user_id, source, failed_attempts, first_failed_at, updated_at)
      values (account.id, source_ip, attempts, window_start, now_)
      on conflict on constraint sign_in_sources_pkey do update
        set failed_attempts = attempts, first_failed_at = window_start, updated_at = now_;
    end if;
    perform auth.write_audit_event('login', account.id, p_ip, false,
                                   pg_catalog.jsonb_build_object('reason', 'invalid_password',
                                                                 'failures', attempts));

    -- The account's streak, from every source.
    if account.first_failed_sign_in_at is null or account.first_failed_sign_in_at <= now_ - p_failure_window then
      attempts := 1;
      window_start := now_;
    else
      attempts := account.failed_sign_in_attempts + 1;
      window_start := account.first_failed_sign_in_at;
    end if;
    if attempts >= p_account_max_failures then
      until := now_ + auth.lock_for(p_lockout, p_max_lockout, account.lock_count + 1);
      update auth.users u
         set failed_sign_in_attempts = 0, first_failed_sign_in_at = null, locked_until = until,
             lock_count = u.lock_count + 1, updated_at = now_
       where u.id = account.id;
      lock_scope := 'account';
      perform auth.write_audit_event('user_locked', account.id, p_ip, true,
        pg_catalog.jsonb_build_object('scope', 'account', 'failures', attempts,
                                      'lock_count', account.lock_count + 1, 'locked_until', until));
    else
      update auth.users u
         set failed_sign_in_attempts = attempts, first_failed_sign_in_at = window_start, updated_at = now_
       where u.id = account.id;
    end if;
    return;
  end if;

  -- The right password: this source is known from now on, its streak and lock are over.
  insert into auth.sign_in_sources as s (user_id, source, last_sign_in_at, updated_at)
  values (account.id, source_ip, now_, now_)
  on conflict on constraint sign_in_sources_pkey do update
    set failed_attempts = 0, first_failed_at = null, locked_until = null, lock_count = 0,
        last_sign_in_at = now_, updated_at = now_;

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
revoke all on function auth.check_password(text, text, inet, integer, integer, interval, interval, interval)
  from public, anon, authenticated, service_role;
grant execute on function auth.check_password(text, text, inet, integer, integer, interval, interval, interval)
  to service_role;

-- Ends every lock and failure streak of a user, the account's and each
-- source's; known sources stay known.  Private: unlock_user and
-- reset_password write their own audit rows.
create or replace function auth.clear_sign_in_locks(p_user_id uuid) returns boolean
  language plpgsql volatile
  set search_path = ''
  as $$
begin
  update auth.users u
     set failed_sign_in_attempts = 0, first_failed_sign_in_at = null, locked_until = null, lock_count = 0,
         updated_at = pg_catalog.now()
   where u.id = p_user_id;
  if not found then
    return false;
  end if;
  delete from auth.sign_in_sources s where s.user_id = p_user_id and s.last_sign_in_at is null;
  update auth.sign_in_sources s
     set failed_attempts = 0, first_failed_at = null, locked_until = null, lock_count = 0,
         updated_at = pg_catalog.now()
   where s.user_id = p_user_id;
  return true;
end
$$;
revoke all on function auth.clear_sign_in_locks(uuid) from public, anon, authenticated, service_role;

-- Admin (the dashboard's admin API): lifts every lock of a user now, the
-- account's backoff and each source's, and resets their growth.  Returns
-- false for an unknown user.
create or replace function auth.unlock_user(p_user_id uuid, p_actor_id uuid default null, p_ip inet default null)
  returns boolean
  language plpgsql volatile security definer
  set search_path = ''
  as $$
begin
  if not auth.clear_sign_in_locks(p_user_id) then
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

-- Admin: a user's lockout state, for the dashboard to show (null for an
-- unknown user).  locked_until is null unless a lock is on now; sources
-- lists each source with a streak, a lock or a sign-in (known: its lock
-- growth, and whether the account's backoff lets it through).
create or replace function auth.sign_in_lockout(p_user_id uuid) returns jsonb
  language sql stable security definer
  set search_path = ''
  as $$
    select pg_catalog.jsonb_build_object(
             'user_id', u.id,
             'locked_until', case when u.locked_until > pg_catalog.now() then u.locked_until end,
             'lock_count', u.lock_count,
             'failed_attempts', u.failed_sign_in_attempts,
             'sources', coalesce((
               select pg_catalog.jsonb_agg(pg_catalog.jsonb_build_object(
                        'source', pg_catalog.host(s.source),
                        'locked_until', case when s.locked_until > pg_catalog.now() then s.locked_until end,
                        'lock_count', s.lock_count,
                        'failed_attempts', s.failed_attempts,
                        'last_sign_in_at', s.last_sign_in_at,
                        'known', s.last_sign_in_at > pg_catalog.now() - interval '90 days')
                      order by s.updated_at desc)
                 from auth.sign_in_sources s where s.user_id = u.id), '[]'))
      from auth.users u
     where u.id = p_user_id
  $$;
revoke all on function auth.sign_in_lockout(uuid) from public, anon, authenticated, service_role;
grant execute on function auth.sign_in_lockout(uuid) to service_role;

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
     set encrypted_password = new_hash, updated_at = pg_catalog.now()
   where u.id = verified.user_id;
  -- The owner proved the mailbox is theirs: every lock ends with the old password.
  perform auth.clear_sign_in_locks(verified.user_id);
  perform auth.end_user_sessions(verified.user_id);
  user_id := verified.user_id;
  perform auth.write_audit_event('user_updated_password', user_id, p_ip, true,
                                 pg_catalog.jsonb_build_object('via', 'recovery'));
end
$$;
revoke all on function auth.reset_password(text, text, integer, inet)
  from public, anon, authenticated, service_role;
grant execute on function auth.reset_password(text, text, integer, inet) to service_role;
