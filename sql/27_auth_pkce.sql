-- Auth, PKCE (conventions: sql/21_auth_common.sql): flow state, auth code,
-- exchange.  The table is the auth_flow_state migration's; its revert drops
-- these functions.

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
revoke all on function auth.create_flow_state(uuid, text, text, text, text, interval, inet)
  from public, anon, authenticated, service_role;
grant execute on function auth.create_flow_state(uuid, text, text, text, text, interval, inet) to service_role;

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
revoke all on function auth.issue_auth_code(text, inet)
  from public, anon, authenticated, service_role;
grant execute on function auth.issue_auth_code(text, inet) to service_role;

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
revoke all on function auth.exchange_auth_code(text, text, interval, inet)
  from public, anon, authenticated, service_role;
grant execute on function auth.exchange_auth_code(text, text, interval, inet) to service_role;
