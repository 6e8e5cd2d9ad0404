-- Deploy fluxbase:auth_schema to pg
-- requires: foundation
--
-- The state of application-user auth, GoTrue-compatible in table and column
-- names so that Supabase exports load and tools that read auth.* keep
-- working.  Only state lives here; the rules (sign up, check a password,
-- rotate a refresh token, ...) are functions in sql/2*_auth_*.sql, which every
-- `fluxbase migrate` re-applies.  No API role gets a privilege on these
-- tables: they are reached only through those functions.
--
-- Every secret is stored as a one-way digest (bcrypt for passwords, sha256
-- hex for tokens); the check constraints refuse anything else, so a bug
-- cannot write a plaintext token or password by mistake.

BEGIN;

create table auth.users (
  id uuid primary key default pg_catalog.gen_random_uuid(),
  aud text not null default 'authenticated',
  role text not null default 'authenticated',
  email text,
  -- bcrypt only ($2a$/$2b$/$2y$, 60 characters); null means no password
  -- (anonymous, OAuth or magic-link-only users).
  encrypted_password text
    constraint users_encrypted_password_is_bcrypt
    check (encrypted_password ~ '^\$2[aby]\$[0-9]{2}\$[./A-Za-z0-9]{53}$'),
  email_confirmed_at timestamptz,
  invited_at timestamptz,
  confirmation_sent_at timestamptz,
  recovery_sent_at timestamptz,
  -- A requested, not yet confirmed new address (GoTrue's `new_email`).
  email_change text,
  email_change_sent_at timestamptz,
  phone text,
  phone_confirmed_at timestamptz,
  confirmed_at timestamptz generated always as (least(email_confirmed_at, phone_confirmed_at)) stored,
  last_sign_in_at timestamptz,
  raw_app_meta_data jsonb not null default '{}',
  raw_user_meta_data jsonb not null default '{}',
  is_sso_user boolean not null default false,
  is_anonymous boolean not null default false,
  banned_until timestamptz,
  deleted_at timestamptz,
  -- Lockout: failures counted within a window that starts at the first
  -- failure; too many lock sign-in until locked_until (an expiry, never
  -- forever).  A success or an admin unlock clears all three.
  failed_sign_in_attempts integer not null default 0
    constraint users_failed_sign_in_attempts_not_negative check (failed_sign_in_attempts >= 0),
  first_failed_sign_in_at timestamptz,
  locked_until timestamptz,
  created_at timestamptz not null default pg_catalog.now(),
  updated_at timestamptz not null default pg_catalog.now(),
  constraint users_app_meta_data_is_object check (pg_catalog.jsonb_typeof(raw_app_meta_data) = 'object'),
  constraint users_user_meta_data_is_object check (pg_catalog.jsonb_typeof(raw_user_meta_data) = 'object')
);

-- One live account per address, whatever its case; a deleted account frees it.
create unique index users_email_key on auth.users (pg_catalog.lower(email))
  where deleted_at is null and email is not null;
create unique index users_phone_key on auth.users (phone)
  where deleted_at is null and phone is not null;
create index users_created_at_idx on auth.users (created_at);

-- How a user signs in: one row per provider account (email, google, ...).
create table auth.identities (
  id uuid primary key default pg_catalog.gen_random_uuid(),
  provider_id text not null,
  user_id uuid not null references auth.users (id) on delete cascade,
  identity_data jsonb not null default '{}',
  provider text not null,
  email text generated always as (pg_catalog.lower(identity_data ->> 'email')) stored,
  last_sign_in_at timestamptz,
  created_at timestamptz not null default pg_catalog.now(),
  updated_at timestamptz not null default pg_catalog.now(),
  constraint identities_provider_id_provider_key unique (provider_id, provider)
);
create index identities_user_id_idx on auth.identities (user_id);
create index identities_email_idx on auth.identities (email);

-- A signed-in device.  Deleting the row signs it out: its refresh tokens go
-- with it, and the server refuses access tokens whose session_id is gone.
create table auth.sessions (
  id uuid primary key default pg_catalog.gen_random_uuid(),
  user_id uuid not null references auth.users (id) on delete cascade,
  aal text not null default 'aal1'
    constraint sessions_aal_known check (aal in ('aal1', 'aal2', 'aal3')),
  -- How the user authenticated (the access token's `amr`), kept so that a
  -- refreshed token carries the same claims.
  amr jsonb not null default '[]',
  not_after timestamptz,
  refreshed_at timestamptz,
  user_agent text,
  ip inet,
  -- Per-session key from which a rotated refresh token is derived, so that
  -- a replay within the reuse window can be answered with the same child
  -- without ever storing a token in plaintext (see auth.rotate_refresh_token).
  refresh_token_hmac_key bytea not null default extensions.gen_random_bytes(32),
  created_at timestamptz not null default pg_catalog.now(),
  updated_at timestamptz not null default pg_catalog.now()
);
create index sessions_user_id_idx on auth.sessions (user_id);
create index sessions_not_after_idx on auth.sessions (not_after);

create table auth.refresh_tokens (
  id bigserial primary key,
  token_hash text not null
    constraint refresh_tokens_token_hash_is_sha256 check (token_hash ~ '^[0-9a-f]{64}$'),
  user_id uuid not null references auth.users (id) on delete cascade,
  session_id uuid not null references auth.sessions (id) on delete cascade,
  -- token_hash of the token this one replaced; null for a session's first.
  parent text,
  revoked boolean not null default false,
  created_at timestamptz not null default pg_catalog.now(),
  updated_at timestamptz not null default pg_catalog.now(),
  constraint refresh_tokens_token_hash_key unique (token_hash)
);
create index refresh_tokens_session_id_idx on auth.refresh_tokens (session_id, revoked);
create index refresh_tokens_parent_idx on auth.refresh_tokens (parent);
create index refresh_tokens_user_id_idx on auth.refresh_tokens (user_id);

-- Links and codes sent by mail: single use, with an expiry.
create table auth.one_time_tokens (
  id uuid primary key default pg_catalog.gen_random_uuid(),
  user_id uuid not null references auth.users (id) on delete cascade,
  token_type text not null
    constraint one_time_tokens_token_type_known
    check (token_type in ('confirmation', 'recovery', 'email_change', 'magic_link', 'reauthentication')),
  token_hash text not null
    constraint one_time_tokens_token_hash_is_sha256 check (token_hash ~ '^[0-9a-f]{64}$'),
  -- What the token is about: the address it was sent to (the new address
  -- for an email change).
  relates_to text not null,
  created_at timestamptz not null default pg_catalog.now(),
  expires_at timestamptz not null,
  consumed_at timestamptz,
  constraint one_time_tokens_token_hash_key unique (token_hash),
  constraint one_time_tokens_expires_after_creation check (expires_at > created_at)
);
-- A new token of a kind replaces the user's previous one (as in GoTrue).
create unique index one_time_tokens_user_id_token_type_key on auth.one_time_tokens (user_id, token_type)
  where consumed_at is null;
create index one_time_tokens_relates_to_idx on auth.one_time_tokens using hash (relates_to);

-- Security events, written by the auth functions in the transaction that
-- makes the change, so an event exists exactly when the change does.  Never
-- a secret in details: ids, reasons and counts only.
create table audit.events (
  id bigserial primary key,
  at timestamptz not null default pg_catalog.now(),
  event text not null,
  actor_id uuid,
  ip inet,
  success boolean not null,
  details jsonb not null default '{}'
);
create index events_at_idx on audit.events (at);
create index events_actor_id_idx on audit.events (actor_id, at);

COMMIT;
