-- Auth, mail requests (conventions: sql/21_auth_common.sql): what signup
-- (awaiting confirmation), /otp and /magiclink, /recover and /resend do, in
-- one call that does the same work whether or not the address has an
-- account, so neither the answer nor its time tells.

-- Handles a request that may send a mail to p_email.  p_kind is
--   signup        create the account with p_password; mail a confirmation if it is new;
--   magic_link    mail a sign-in link (creating a link-only account when p_create);
--   recovery      mail a password reset;
--   confirmation  mail the confirmation again, if the address is not yet confirmed;
--   email_change  mail the pending new address its confirmation again.
-- Every path costs exactly one bcrypt at p_password_cost (a new account's
-- password, else a throwaway hash) and writes one mail_requested audit row,
-- without the address.  Whether a mail goes out shows only in the result,
-- for the server to send after its answer: user_id, send_to and the token
-- (and 6-digit code) are null when there is nothing to send.  A PKCE
-- challenge is checked before anything is looked up, and the mail's token
-- is tied to a new flow (auth.create_flow_state).  Values the caller must
-- fix raise 22023 the same way for every address.
create or replace function auth.request_mail(
  p_kind text,
  p_email text,
  p_password text default null,
  p_user_metadata jsonb default '{}',
  p_create boolean default false,
  p_password_cost integer default 10,
  p_lifetime interval default '1 hour',
  p_ip inet default null,
  p_code_challenge text default null,
  p_code_challenge_method text default null,
  out user_id uuid,
  out send_to text,
  out token text,
  out code text,
  out created boolean,
  out requested_at timestamptz
)
  language plpgsql volatile security definer
  set search_path = ''
  as $$
declare
  address text := pg_catalog.lower(pg_catalog.btrim(p_email));
  account auth.users;
  token_kind text;
  signed_up record;
begin
  if p_kind is null or p_kind not in ('signup', 'magic_link', 'recovery', 'confirmation', 'email_change') then
    raise exception 'unknown mail request %', p_kind using errcode = '22023';
  end if;
  if (p_code_challenge is null) <> (p_code_challenge_method is null)
     or pg_catalog.lower(p_code_challenge_method) not in ('s256', 'plain')
     or p_code_challenge !~ '^[A-Za-z0-9._~-]{43,128}$' then
    raise exception 'PKCE needs a code_challenge of 43 to 128 characters and a method of s256 or plain'
      using errcode = '22023';
  end if;
  if p_kind = 'signup' and p_password is null then
    raise exception 'a signup needs a password' using errcode = '22023';
  end if;
  requested_at := pg_catalog.now();
  created := false;

  select * into account from auth.users u
   where pg_catalog.lower(u.email) = address and u.deleted_at is null;

  if p_kind = 'signup' or (p_kind = 'magic_link' and p_create and account.id is null) then
    -- auth.sign_up hashes the password whether or not the address is taken: the one bcrypt.
    select * into signed_up
      from auth.sign_up(p_email, coalesce(p_password, auth.random_token()), p_user_metadata,
                        p_password_cost, false, p_ip);
    created := signed_up.created;
    if created then
      select * into account from auth.users u where u.id = signed_up.user_id;
    end if;
  else
    perform auth.hash_password(auth.random_token(), p_password_cost);
  end if;

  if account.id is not null then
    if p_kind = 'signup' then
      token_kind := case when created then 'confirmation' end;
    elsif p_kind in ('magic_link', 'recovery') then
      token_kind := p_kind;
    elsif p_kind = 'confirmation' then
      token_kind := case when account.email_confirmed_at is null then 'confirmation' end;
    elsif account.email_change is not null then
      token_kind := 'email_change';
    end if;
  end if;

  if token_kind is not null then
    user_id := account.id;
    send_to := case when token_kind = 'email_change' then account.email_change else address end;
    if token_kind = 'email_change' then
      token := auth.issue_one_time_token(user_id, token_kind, send_to, p_lifetime, p_ip);
    else
      select o.token, o.code into token, code
        from auth.issue_email_otp(user_id, token_kind, send_to, p_lifetime, p_ip) o;
    end if;
    if p_code_challenge is not null then
      perform auth.create_flow_state(user_id, token_kind, p_code_challenge, p_code_challenge_method,
                                     case when token_kind = 'recovery' then 'recovery' else 'otp' end,
                                     p_lifetime, p_ip);
    end if;
  end if;
  perform auth.write_audit_event('mail_requested', user_id, p_ip, true,
                                 pg_catalog.jsonb_build_object('kind', p_kind, 'sent', token_kind is not null));
end
$$;
revoke all on function auth.request_mail(text, text, text, jsonb, boolean, integer, interval, inet, text, text)
  from public, anon, authenticated, service_role;
grant execute on function auth.request_mail(text, text, text, jsonb, boolean, integer, interval, inet, text, text)
  to service_role;
