-- Deploy fluxbase:storage_schema to pg
-- requires: foundation
-- requires: auth_schema
--
-- Storage metadata with Supabase Storage's table and column names, so that
-- policies written for Supabase work unchanged.  The bytes live in a backend
-- (local disk or S3) under a blob name that is the object's `version`, never
-- its user-chosen name: a move is a row update, and no key ever becomes a
-- filesystem path.  RLS is on for every table; the API roles get table
-- privileges and policies decide (service_role bypasses RLS).  Functions,
-- grants and triggers are in sql/50_storage.sql.

BEGIN;

create table storage.buckets (
  id text primary key,
  name text not null,
  owner uuid,
  owner_id text,
  public boolean not null default false,
  avif_autodetection boolean not null default false,
  file_size_limit bigint constraint buckets_file_size_limit_positive check (file_size_limit is null or file_size_limit > 0),
  allowed_mime_types text[],
  type text not null default 'STANDARD' constraint buckets_type check (type in ('STANDARD')),
  created_at timestamptz not null default pg_catalog.now(),
  updated_at timestamptz not null default pg_catalog.now()
);
create unique index bname on storage.buckets (name);

create table storage.objects (
  id uuid primary key default extensions.uuid_generate_v4(),
  bucket_id text not null constraint objects_bucketid_fkey references storage.buckets (id),
  name text not null,
  owner uuid,
  owner_id text,
  metadata jsonb,
  user_metadata jsonb,
  path_tokens text[] generated always as (pg_catalog.string_to_array(name, '/')) stored,
  -- The blob's name in the backend: a fresh one for every write of the object.
  version text,
  created_at timestamptz not null default pg_catalog.now(),
  updated_at timestamptz not null default pg_catalog.now(),
  last_accessed_at timestamptz not null default pg_catalog.now()
);
create unique index bucketid_objname on storage.objects (bucket_id, name);
create index name_prefix_search on storage.objects (name text_pattern_ops);

-- TUS uploads in progress ("pending rows"): who started it, where it goes,
-- how long it is.  The bytes received so far are in a spool file named by
-- id; the reaper drops rows (and files) past expires_at.  Only the server
-- reads this table (as service_role); no policy lets anyone else in.
create table storage.resumable_uploads (
  id text primary key,
  bucket_id text not null references storage.buckets (id) on delete cascade,
  name text not null,
  upload_length bigint not null constraint resumable_uploads_length check (upload_length >= 0),
  content_type text,
  cache_control text,
  user_metadata jsonb,
  upsert boolean not null default false,
  role text not null,
  owner_id text,
  created_at timestamptz not null default pg_catalog.now(),
  expires_at timestamptz not null
);
create index resumable_uploads_expires_at on storage.resumable_uploads (expires_at);

alter table storage.buckets enable row level security;
alter table storage.objects enable row level security;
alter table storage.resumable_uploads enable row level security;

COMMIT;
