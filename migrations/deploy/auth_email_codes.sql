-- Deploy fluxbase:auth_email_codes to pg
-- requires: auth_schema
--
-- 6-digit email codes (GoTrue's `token` in templates, `email_otp` in
-- generate_link) next to the link tokens: the code belongs to the same
-- one-time token row (same type, expiry and single use; using either the
-- link or the code consumes both).  A code is never looked up by itself: a
-- million values would let a code alone pick out some user.  It is checked
-- only against the live codes of the address the client names, stored as
-- sha256 of the row id and the code, and wrong tries are counted on the row
-- so that guessing ends after a few attempts (auth.verify_email_code).

BEGIN;

alter table auth.one_time_tokens
  add column code_hash text
    constraint one_time_tokens_code_hash_is_sha256 check (code_hash ~ '^[0-9a-f]{64}$'),
  add column failed_attempts integer not null default 0
    constraint one_time_tokens_failed_attempts_not_negative check (failed_attempts >= 0);

COMMIT;
