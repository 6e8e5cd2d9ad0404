-- Verify fluxbase:auth_schema on pg

BEGIN;

select id, aud, role, email, encrypted_password, email_confirmed_at, phone, confirmed_at,
       last_sign_in_at, raw_app_meta_data, raw_user_meta_data, is_anonymous, banned_until,
       deleted_at, failed_sign_in_attempts, first_failed_sign_in_at, locked_until,
       created_at, updated_at
  from auth.users where false;
select id, provider_id, user_id, identity_data, provider, email from auth.identities where false;
select id, user_id, aal, amr, not_after, refreshed_at, user_agent, ip, refresh_token_hmac_key
  from auth.sessions where false;
select id, token_hash, user_id, session_id, parent, revoked, created_at, updated_at
  from auth.refresh_tokens where false;
select id, user_id, token_type, token_hash, relates_to, created_at, expires_at, consumed_at
  from auth.one_time_tokens where false;
select id, at, event, actor_id, ip, success, details from audit.events where false;

ROLLBACK;
