-- Auth, users (conventions: sql/21_auth_common.sql): sign-up, the GoTrue
-- User object and the lookups the HTTP layer needs, the user's own changes
-- (PUT /user) and the administrator's (ban, delete, PUT /admin/users/{id}).

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
revoke all on function auth.user_json(uuid) from public, anon, authenticated, service_role;
grant execute on function auth.user_json(uuid) to service_role;

-- The live user with this address (any case), or null.  The server uses it
-- to decide whether to send mail; its answer to the client never depends on it.
create or replace function auth.find_user_by_email(p_email text) returns uuid
  language sql stable security definer
  set search_path = ''
  as $$
    select u.id from auth.users u
     where pg_catalog.lower(u.email) = pg_catalog.lower(pg_catalog.btrim(p_email)) and u.deleted_at is null
  $$;
revoke all on function auth.find_user_by_email(text) from public, anon, authenticated, service_role;
grant execute on function auth.find_user_by_email(text) to service_role;

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
                             -- bigint: page 10^9 of 1,000 is past any table, not an overflow
                             offset (greatest(p_page, 1)::bigint - 1) * greatest(p_per_page, 1)) page), '[]'),
           (select pg_catalog.count(*) from auth.users u where u.deleted_at is null)
  $$;
revoke all on function auth.list_users(integer, integer)
  from public, anon, authenticated, service_role;
grant execute on function auth.list_users(integer, integer) to service_role;

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
revoke all on function auth.sign_up(text, text, jsonb, integer, boolean, inet)
  from public, anon, authenticated, service_role;
grant execute on function auth.sign_up(text, text, jsonb, integer, boolean, inet) to service_role;

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
revoke all on function auth.sign_up_anonymous(jsonb, inet)
  from public, anon, authenticated, service_role;
grant execute on function auth.sign_up_anonymous(jsonb, inet) to service_role;

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
revoke all on function auth.update_user(uuid, jsonb, text, text, integer, uuid, interval, inet)
  from public, anon, authenticated, service_role;
grant execute on function auth.update_user(uuid, jsonb, text, text, integer, uuid, interval, inet) to service_role;

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
revoke all on function auth.ban_user(uuid, interval, uuid, inet)
  from public, anon, authenticated, service_role;
grant execute on function auth.ban_user(uuid, interval, uuid, inet) to service_role;

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
revoke all on function auth.delete_user(uuid, boolean, uuid, inet)
  from public, anon, authenticated, service_role;
grant execute on function auth.delete_user(uuid, boolean, uuid, inet) to service_role;

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
  ban interval;
begin
  if pg_catalog.jsonb_typeof(p_changes) is distinct from 'object' then
    raise exception 'changes must be a JSON object' using errcode = '22023';
  end if;
  -- Values are checked before anything changes, each refusal a 22023 the server answers as the
  -- client's mistake: a malformed interval or hash would otherwise surface as some other error.
  if p_changes ? 'ban_duration' and (p_changes ->> 'ban_duration') is distinct from 'none' then
    begin
      ban := (p_changes ->> 'ban_duration')::interval;
      perform now_ + ban;  -- 10^9 years parses, but is past any timestamp
    exception when data_exception then
      ban := null;
    end;
    if ban is null or ban <= interval '0' then
      raise exception 'ban_duration must be a positive duration such as 24h, or none' using errcode = '22023';
    end if;
  end if;
  if p_changes ? 'password_hash'
     and (p_changes ->> 'password_hash') !~ '^\$2[aby]\$[0-9]{2}\$[./A-Za-z0-9]{53}$' then
    raise exception 'password_hash must be a bcrypt hash' using errcode = '22023';
  end if;
  if p_changes ? 'email' and (pg_catalog.jsonb_typeof(p_changes -> 'email') <> 'string'
                              or new_address !~ '^[^@[:space:]]+@[^@[:space:]]+$') then
    raise exception 'email must be an email address' using errcode = '22023';
  end if;
  if p_changes ? 'phone' and pg_catalog.jsonb_typeof(p_changes -> 'phone') not in ('string', 'null') then
    raise exception 'phone must be a string' using errcode = '22023';
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
    perform auth.ban_user(p_user_id, ban, p_actor_id, p_ip);
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
revoke all on function auth.admin_update_user(uuid, jsonb, uuid, inet, integer)
  from public, anon, authenticated, service_role;
grant execute on function auth.admin_update_user(uuid, jsonb, uuid, inet, integer) to service_role;
