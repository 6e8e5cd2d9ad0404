-- Verify fluxbase:auth_email_codes on pg

BEGIN;

select code_hash, failed_attempts from auth.one_time_tokens where false;

ROLLBACK;
