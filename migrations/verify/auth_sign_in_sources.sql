-- Verify fluxbase:auth_sign_in_sources on pg

BEGIN;

select user_id, source, failed_attempts, first_failed_at, locked_until, lock_count, last_sign_in_at, updated_at
  from auth.sign_in_sources where false;
select lock_count from auth.users where false;

ROLLBACK;
