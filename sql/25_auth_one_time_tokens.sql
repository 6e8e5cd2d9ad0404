-- Auth, one-time tokens (conventions: sql/21_auth_common.sql): the link
-- tokens of confirmation, recovery, email change, magic link and
-- reauthentication mails, issued and consumed once.

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
revoke all on function auth.issue_one_time_token(uuid, text, text, interval, inet)
  from public, anon, authenticated, service_role;
grant execute on function auth.issue_one_time_token(uuid, text, text, interval, inet) to service_role;

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
revoke all on function auth.use_one_time_token(uuid, text, inet)
  from public, anon, authenticated, service_role;

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
revoke all on function auth.verify_one_time_token(text, text, inet)
  from public, anon, authenticated, service_role;
grant execute on function auth.verify_one_time_token(text, text, inet) to service_role;
