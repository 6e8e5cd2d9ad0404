-- Deploy fluxbase:auth_sign_in_sources to pg
-- requires: auth_flow_state
--
-- Lockout that protects the owner instead of locking them out: wrong
-- passwords are counted per account and source (client IP), so a source
-- that failed is locked out of that account and the owner elsewhere is
-- not.  A source the account has signed in from before is remembered here
-- too: when many sources fail against one account, the account's backoff
-- (auth.users.locked_until, growing with lock_count) stops only sources it
-- has never seen succeed.  See auth.check_password.

BEGIN;

create table auth.sign_in_sources (
  user_id uuid not null references auth.users (id) on delete cascade,
  -- The client IP as the server resolved it (trusted proxies only); the
  -- unspecified address stands for a request whose source is unknown.
  source inet not null,
  failed_attempts integer not null default 0
    constraint sign_in_sources_failed_attempts_not_negative check (failed_attempts >= 0),
  first_failed_at timestamptz,
  locked_until timestamptz,
  -- Locks of this source so far: each one lasts twice the one before.
  lock_count integer not null default 0
    constraint sign_in_sources_lock_count_not_negative check (lock_count >= 0),
  last_sign_in_at timestamptz,
  updated_at timestamptz not null default pg_catalog.now(),
  constraint sign_in_sources_pkey primary key (user_id, source)
);

-- The account-wide backoff's locks so far (failed_sign_in_attempts,
-- first_failed_sign_in_at and locked_until already count and hold it).
alter table auth.users
  add column lock_count integer not null default 0
    constraint users_lock_count_not_negative check (lock_count >= 0);

COMMIT;
