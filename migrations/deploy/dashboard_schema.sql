-- Deploy fluxbase:dashboard_schema to pg
-- requires: auth_schema
--
-- Dashboard administrators: the people who run the instance, a population
-- apart from the application's users (auth.*) in table, token, endpoint and
-- rate limit.  Only state lives here; the rules are functions in
-- sql/50_dashboard.sql, re-applied by every `fluxbase migrate`.  No API role
-- gets a privilege on these tables.
--
-- Secrets: passwords are bcrypt; tokens, backup codes and API keys are
-- stored as sha256 hex (they are long random values, so a fast digest is
-- enough); the TOTP secret is encrypted by the server (AES-GCM, a key the
-- database never sees), because it must be read back to check a code.

BEGIN;

create table dashboard.users (
  id uuid primary key default pg_catalog.gen_random_uuid(),
  email text not null,
  -- null while an invited administrator has not chosen a password yet.
  password_hash text
    constraint users_password_hash_is_bcrypt
    check (password_hash ~ '^\$2[aby]\$[0-9]{2}\$[./A-Za-z0-9]{53}$'),
  full_name text not null default '',
  avatar_url text,
  role text not null default 'dashboard_admin'
    constraint users_role_known check (role in ('dashboard_admin', 'dashboard_viewer')),
  -- nonce || ciphertext || tag, made and read by the server only.
  totp_secret_encrypted bytea,
  totp_enabled boolean not null default false,
  -- The last TOTP time step accepted: a code is good once, however long it stays valid.
  totp_last_step bigint,
  failed_attempts integer not null default 0
    constraint users_failed_attempts_not_negative check (failed_attempts >= 0),
  first_failed_at timestamptz,
  locked_until timestamptz,
  email_verified_at timestamptz,
  last_login_at timestamptz,
  password_changed_at timestamptz,
  created_at timestamptz not null default pg_catalog.now(),
  updated_at timestamptz not null default pg_catalog.now(),
  deleted_at timestamptz,
  constraint users_totp_enabled_has_secret check (not totp_enabled or totp_secret_encrypted is not null)
);
create unique index users_email_key on dashboard.users (pg_catalog.lower(email)) where deleted_at is null;

-- Ten single-use codes per administrator, for when the authenticator app is lost.
create table dashboard.backup_codes (
  id bigserial primary key,
  user_id uuid not null references dashboard.users (id) on delete cascade,
  code_hash text not null constraint backup_codes_code_hash_is_sha256 check (code_hash ~ '^[0-9a-f]{64}$'),
  used_at timestamptz,
  created_at timestamptz not null default pg_catalog.now(),
  constraint backup_codes_user_id_code_hash_key unique (user_id, code_hash)
);

-- A signed-in browser or client.  Deleting the row signs it out: every admin
-- request checks that its session still exists.
create table dashboard.sessions (
  id uuid primary key default pg_catalog.gen_random_uuid(),
  user_id uuid not null references dashboard.users (id) on delete cascade,
  aal text not null default 'aal1' constraint sessions_aal_known check (aal in ('aal1', 'aal2')),
  refresh_token_hash text not null
    constraint sessions_refresh_token_hash_is_sha256 check (refresh_token_hash ~ '^[0-9a-f]{64}$'),
  -- The token this one replaced: presenting it again means it was copied, and ends the session.
  previous_refresh_token_hash text,
  ip inet,
  user_agent text,
  created_at timestamptz not null default pg_catalog.now(),
  refreshed_at timestamptz,
  expires_at timestamptz not null,
  constraint sessions_refresh_token_hash_key unique (refresh_token_hash)
);
create index sessions_user_id_idx on dashboard.sessions (user_id);
create index sessions_previous_refresh_token_hash_idx on dashboard.sessions (previous_refresh_token_hash);

-- The half-way state of a 2FA login: the password was right, a code is due.
create table dashboard.mfa_challenges (
  id uuid primary key default pg_catalog.gen_random_uuid(),
  user_id uuid not null references dashboard.users (id) on delete cascade,
  ip inet,
  attempts integer not null default 0,
  created_at timestamptz not null default pg_catalog.now(),
  expires_at timestamptz not null,
  consumed_at timestamptz
);
create index mfa_challenges_user_id_idx on dashboard.mfa_challenges (user_id);

-- Links sent by mail: password reset, address verification, invitation.
create table dashboard.one_time_tokens (
  id uuid primary key default pg_catalog.gen_random_uuid(),
  user_id uuid not null references dashboard.users (id) on delete cascade,
  token_type text not null
    constraint one_time_tokens_token_type_known
    check (token_type in ('password_reset', 'email_verification', 'invitation')),
  token_hash text not null
    constraint one_time_tokens_token_hash_is_sha256 check (token_hash ~ '^[0-9a-f]{64}$'),
  created_at timestamptz not null default pg_catalog.now(),
  expires_at timestamptz not null,
  consumed_at timestamptz,
  constraint one_time_tokens_token_hash_key unique (token_hash)
);
create unique index one_time_tokens_user_id_token_type_key on dashboard.one_time_tokens (user_id, token_type)
  where consumed_at is null;

-- API keys: `fbk_` + 43 random characters, shown once; only the digest is kept.
create table dashboard.api_keys (
  id uuid primary key default pg_catalog.gen_random_uuid(),
  name text not null constraint api_keys_name_not_blank check (pg_catalog.btrim(name) <> ''),
  -- The first characters, so an operator can tell keys apart without the key.
  key_prefix text not null,
  key_hash text not null constraint api_keys_key_hash_is_sha256 check (key_hash ~ '^[0-9a-f]{64}$'),
  scopes text[] not null
    constraint api_keys_scopes_known
    check (pg_catalog.cardinality(scopes) > 0
           and scopes <@ array['rest:read', 'rest:write', 'storage', 'realtime', 'admin']),
  role text not null default 'anon' constraint api_keys_role_known check (role in ('anon', 'service_role')),
  rate_limit_per_minute integer not null default 1000
    constraint api_keys_rate_limit_positive check (rate_limit_per_minute > 0),
  expires_at timestamptz,
  revoked_at timestamptz,
  last_used_at timestamptz,
  created_by uuid references dashboard.users (id) on delete set null,
  created_at timestamptz not null default pg_catalog.now(),
  updated_at timestamptz not null default pg_catalog.now(),
  constraint api_keys_key_hash_key unique (key_hash)
);

-- What administrators did, for the dashboard's activity view; the same
-- events go to audit.events in the same transaction.  No foreign key: the
-- log outlives the administrators and keys it names.
create table dashboard.activity_log (
  id bigserial primary key,
  at timestamptz not null default pg_catalog.now(),
  user_id uuid,
  api_key_id uuid,
  action text not null,
  resource_type text,
  resource_id text,
  ip inet,
  success boolean not null default true,
  details jsonb not null default '{}'
    constraint activity_log_details_is_object check (pg_catalog.jsonb_typeof(details) = 'object')
);
create index activity_log_at_idx on dashboard.activity_log (at);
create index activity_log_user_id_idx on dashboard.activity_log (user_id, at);
create index activity_log_action_idx on dashboard.activity_log (action, at);

COMMIT;
