-- Verify fluxbase:dashboard_schema on pg

BEGIN;

select id, email, password_hash, full_name, avatar_url, role, totp_secret_encrypted, totp_enabled,
       totp_last_step, failed_attempts, first_failed_at, locked_until, email_verified_at,
       last_login_at, password_changed_at, created_at, updated_at, deleted_at
  from dashboard.users where false;
select id, user_id, code_hash, used_at, created_at from dashboard.backup_codes where false;
select id, user_id, aal, refresh_token_hash, previous_refresh_token_hash, ip, user_agent, created_at,
       refreshed_at, expires_at
  from dashboard.sessions where false;
select id, user_id, ip, attempts, created_at, expires_at, consumed_at from dashboard.mfa_challenges where false;
select id, user_id, token_type, token_hash, created_at, expires_at, consumed_at
  from dashboard.one_time_tokens where false;
select id, name, key_prefix, key_hash, scopes, role, rate_limit_per_minute, expires_at, revoked_at,
       last_used_at, created_by, created_at, updated_at
  from dashboard.api_keys where false;
select id, at, user_id, api_key_id, action, resource_type, resource_id, ip, success, details
  from dashboard.activity_log where false;

ROLLBACK;
