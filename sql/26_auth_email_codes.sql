-- Auth, email codes (conventions: sql/21_auth_common.sql): 6 digits on the
-- same row as a link token, with a wrong-try limit.  The columns are the
-- auth_email_codes migration's; its revert drops these functions.

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
revoke all on function auth.random_code() from public, anon, authenticated, service_role;

-- What is stored for a code: bound to its row, so equal codes of two users
-- differ and a stored digest never matches another row.  (A million codes
-- are quickly tried offline against a stolen digest; the code is useless
-- without its live row, which expires, and no API role reads the table.)
create or replace function auth.code_hash(p_token_id uuid, p_code text) returns text
  language sql immutable strict
  set search_path = ''
  as $$ select auth.token_hash(p_token_id::text || ':' || p_code) $$;
revoke all on function auth.code_hash(uuid, text) from public, anon, authenticated, service_role;

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
revoke all on function auth.issue_email_otp(uuid, text, text, interval, inet)
  from public, anon, authenticated, service_role;
grant execute on function auth.issue_email_otp(uuid, text, text, interval, inet) to service_role;

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
revoke all on function auth.verify_email_code(text, text, text[], inet, integer)
  from public, anon, authenticated, service_role;
grant execute on function auth.verify_email_code(text, text, text[], inet, integer) to service_role;
