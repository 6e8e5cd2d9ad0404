-- Deploy fluxbase:auth_flow_state to pg
-- requires: auth_email_codes
--
-- PKCE (GoTrue's flow_state): a client that starts signup, a magic link or
-- recovery with a code_challenge gets, from the mail link, an auth code in
-- the redirect's query instead of a session in its fragment, and exchanges
-- it with the matching code_verifier (POST /token?grant_type=pkce).  The
-- auth code is stored as its sha256 and used once; the one-time token the
-- mail carries points at the flow it starts.

BEGIN;

create table auth.flow_state (
  id uuid primary key default pg_catalog.gen_random_uuid(),
  user_id uuid not null references auth.users (id) on delete cascade,
  -- RFC 7636: 43 to 128 unreserved characters (s256: base64url of a sha256, 43).
  code_challenge text not null
    constraint flow_state_code_challenge_form check (code_challenge ~ '^[A-Za-z0-9._~-]{43,128}$'),
  code_challenge_method text not null
    constraint flow_state_code_challenge_method_known check (code_challenge_method in ('s256', 'plain')),
  -- The access token's amr method once the code is exchanged (otp, recovery).
  authentication_method text not null,
  auth_code_hash text
    constraint flow_state_auth_code_hash_is_sha256 check (auth_code_hash ~ '^[0-9a-f]{64}$'),
  auth_code_issued_at timestamptz,
  created_at timestamptz not null default pg_catalog.now(),
  expires_at timestamptz not null,
  consumed_at timestamptz,
  constraint flow_state_auth_code_hash_key unique (auth_code_hash),
  constraint flow_state_expires_after_creation check (expires_at > created_at)
);
create index flow_state_user_id_idx on auth.flow_state (user_id);

alter table auth.one_time_tokens
  add column flow_state_id uuid references auth.flow_state (id) on delete set null;

COMMIT;
