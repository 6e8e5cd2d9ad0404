-- Revert fluxbase:auth_email_codes from pg

BEGIN;

drop function if exists auth.verify_email_code(text, text, text[], inet, integer);
drop function if exists auth.issue_email_otp(uuid, text, text, interval, inet);
drop function if exists auth.code_hash(uuid, text);
drop function if exists auth.random_code();
alter table auth.one_time_tokens drop column failed_attempts, drop column code_hash;

COMMIT;
