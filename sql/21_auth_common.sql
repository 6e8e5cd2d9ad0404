-- Application-user auth, part 1 of 7 (sql/21_auth_*.sql to sql/27_auth_*.sql):
-- the conventions every auth file keeps, the table privileges, and the
-- private helpers the others call.  The rules are functions over the tables
-- of the auth_schema migration (and auth_email_codes, auth_flow_state).
-- Re-applied in name order by every `fluxbase migrate`, so every statement
-- is idempotent.
--
-- Who calls what: the server calls the entry points as service_role,
-- inside its role-switched transaction, after it has verified the caller
-- (a JWT's `sub` becomes p_user_id).  anon and authenticated may call none
-- of them, and no API role may read an auth table: these functions are the
-- only way in.  They are SECURITY DEFINER with an empty search_path, so
-- every name is schema-qualified and a caller's objects can never be picked
-- up instead of ours (PostgreSQL has no way to share that preamble between
-- functions; tests/sql/auth_users.sql checks every entry point has it).
--
-- Privileges sit next to each function: PostgreSQL lets PUBLIC execute every
-- new function, so each one is followed by a revoke from every API role and,
-- for an entry point, a grant to service_role alone.  Private helpers get no
-- grant: only the owner, which the SECURITY DEFINER entry points run as, may
-- execute them.
--
-- How failures come back: an outcome the caller must be able to commit
-- (a failed sign-in counts towards lockout, a replayed refresh token revokes
-- its session, and both write an audit row) is returned as a GoTrue error
-- code in an `error` or `outcome` column, never raised: raising would roll
-- the counter, the revocation and the audit row back.  The server commits
-- those transactions even when it answers 4xx.  Programming errors (a
-- bcrypt cost below 10, an unknown scope) raise 22023.  Every change of
-- state is audited through auth.write_audit_event, in the same transaction.
--
-- Secrets: passwords are stored as bcrypt, tokens as sha256 hex; the
-- plaintext of a token is returned once, to be sent to its owner.  No
-- secret ever reaches audit.events.

-- No API role reads or writes an auth or audit table directly, service_role
-- included: the functions are the way in.  Re-stated on every migrate so
-- that a stray grant does not survive.
revoke all on all tables in schema auth from public, anon, authenticated, service_role;
revoke all on all sequences in schema auth from public, anon, authenticated, service_role;
revoke all on all tables in schema audit from public, anon, authenticated, service_role;
revoke all on all sequences in schema audit from public, anon, authenticated, service_role;

-- Tokens are looked up by their sha256: a copy of the tables grants no session.
create or replace function auth.token_hash(p_token text) returns text
  language sql immutable strict
  set search_path = ''
  as $$ select pg_catalog.encode(extensions.digest(p_token, 'sha256'), 'hex') $$;
revoke all on function auth.token_hash(text) from public, anon, authenticated, service_role;

-- 32 random bytes, URL-safe base64 without padding (43 characters): safe in
-- links and query strings.
create or replace function auth.random_token() returns text
  language sql volatile
  set search_path = ''
  as $$ select pg_catalog.translate(pg_catalog.encode(extensions.gen_random_bytes(32), 'base64'), '+/=', '-_') $$;
revoke all on function auth.random_token() from public, anon, authenticated, service_role;

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
revoke all on function auth.write_audit_event(text, uuid, inet, boolean, jsonb)
  from public, anon, authenticated, service_role;

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
revoke all on function auth.end_user_sessions(uuid, uuid)
  from public, anon, authenticated, service_role;
