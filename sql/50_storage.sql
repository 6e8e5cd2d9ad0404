-- Storage: the helpers policies call, listing, grants and the bucket audit
-- trigger, over the tables of the storage_schema migration.  Re-applied by
-- every `fluxbase migrate`, so every statement is idempotent.
--
-- Access is RLS on storage.buckets and storage.objects, as on Supabase: the
-- server runs each storage operation as the caller's role (anon,
-- authenticated, service_role) and PostgreSQL's policies decide.  No policy
-- is installed here, so until a DBA writes one only service_role (which
-- bypasses RLS) sees anything; public buckets are readable by anyone through
-- /object/public/, which the server serves without RLS by design.

-- Path helpers with Supabase's names and results:
--   foldername('a/b/c.png') = {a,b}, filename(...) = 'c.png', extension(...) = 'png'.
create or replace function storage.foldername(name text) returns text[]
  language plpgsql immutable
  set search_path = ''
  as $$
declare
  parts text[];
begin
  parts := pg_catalog.string_to_array(name, '/');
  return parts[1 : pg_catalog.array_length(parts, 1) - 1];
end
$$;

create or replace function storage.filename(name text) returns text
  language plpgsql immutable
  set search_path = ''
  as $$
declare
  parts text[];
begin
  parts := pg_catalog.string_to_array(name, '/');
  return parts[pg_catalog.array_length(parts, 1)];
end
$$;

create or replace function storage.extension(name text) returns text
  language plpgsql immutable
  set search_path = ''
  as $$
declare
  base text;
begin
  base := storage.filename(name);
  if base is null or pg_catalog.strpos(base, '.') = 0 then
    return '';
  end if;
  return pg_catalog.reverse(pg_catalog.split_part(pg_catalog.reverse(base), '.', 1));
end
$$;

-- One level of a bucket's tree under `prefix` (which ends in '/' or is
-- empty): folders first (name only, every other column null), then objects.
-- SECURITY INVOKER, so the caller's SELECT policies decide what is listed;
-- a folder shows only when the caller can see an object inside it.
-- `search` narrows names by a literal prefix of the last segment (LIKE
-- wildcards in it are escaped by the caller's value being matched literally).
create or replace function storage.search(
  prefix text, bucketname text, limits integer default 100, levels integer default 1,
  offsets integer default 0, search text default '', sortcolumn text default 'name',
  sortorder text default 'asc'
) returns table (
  name text, id uuid, updated_at timestamptz, created_at timestamptz,
  last_accessed_at timestamptz, metadata jsonb
)
  language plpgsql stable
  set search_path = ''
  as $$
declare
  sort_column text := pg_catalog.lower(coalesce(sortcolumn, 'name'));
  sort_order text := pg_catalog.lower(coalesce(sortorder, 'asc'));
  pattern text;
begin
  if sort_column not in ('name', 'updated_at', 'created_at', 'last_accessed_at') then
    sort_column := 'name';
  end if;
  if sort_order not in ('asc', 'desc') then
    sort_order := 'asc';
  end if;
  pattern := pg_catalog.replace(pg_catalog.replace(pg_catalog.replace(
    coalesce(prefix, '') || coalesce(search, ''), '\', '\\'), '%', '\%'), '_', '\_') || '%';
  return query execute pg_catalog.format($q$
    with matching as (
      select o.path_tokens[$3] as entry, o.id, o.updated_at, o.created_at, o.last_accessed_at,
             o.metadata, pg_catalog.array_length(o.path_tokens, 1) = $3 as is_object
        from storage.objects o
       where o.bucket_id = $2 and o.name ilike $1
    ), folders as (
      select m.entry as name, null::uuid as id, null::timestamptz as updated_at,
             null::timestamptz as created_at, null::timestamptz as last_accessed_at,
             null::jsonb as metadata, 0 as kind
        from matching m where not m.is_object
       group by m.entry
    ), files as (
      select m.entry, m.id, m.updated_at, m.created_at, m.last_accessed_at, m.metadata, 1
        from matching m where m.is_object
    )
    select r.name, r.id, r.updated_at, r.created_at, r.last_accessed_at, r.metadata
      from (select * from folders union all select * from files) r
     order by r.kind, %s %s nulls last, r.name %s
     limit $4 offset $5
  $q$,
    case when sort_column = 'name' then 'r.name' else 'r.' || sort_column end,
    sort_order, sort_order)
  using pattern, bucketname, levels, limits, offsets;
end
$$;

-- Bucket changes are audited in the same transaction, whoever makes them
-- (the API or SQL): the caller's user id from the JWT claims, never a secret.
create or replace function storage.audit_bucket_change() returns trigger
  language plpgsql
  security definer
  set search_path = ''
  as $$
declare
  row_data storage.buckets;
begin
  row_data := case when tg_op = 'DELETE' then old else new end;
  insert into audit.events (event, actor_id, success, details)
  values (
    'storage_bucket_' || pg_catalog.lower(case tg_op when 'INSERT' then 'created' when 'UPDATE' then 'updated' else 'deleted' end),
    nullif(nullif(pg_catalog.current_setting('request.jwt.claims', true), '')::jsonb ->> 'sub', '')::uuid,
    true,
    pg_catalog.jsonb_build_object(
      'bucket_id', row_data.id,
      'public', row_data.public,
      'file_size_limit', row_data.file_size_limit,
      'allowed_mime_types', row_data.allowed_mime_types,
      'role', nullif(pg_catalog.current_setting('request.jwt.claims', true), '')::jsonb ->> 'role'
    )
  );
  return null;
end
$$;
revoke all on function storage.audit_bucket_change() from public;

drop trigger if exists audit_bucket_change on storage.buckets;
create trigger audit_bucket_change after insert or update or delete on storage.buckets
  for each row execute function storage.audit_bucket_change();

-- updated_at follows every change of a row, whichever statement made it.
create or replace function storage.touch_updated_at() returns trigger
  language plpgsql
  set search_path = ''
  as $$
begin
  new.updated_at := pg_catalog.now();
  return new;
end
$$;

drop trigger if exists touch_updated_at on storage.buckets;
create trigger touch_updated_at before update on storage.buckets
  for each row execute function storage.touch_updated_at();
drop trigger if exists touch_updated_at on storage.objects;
create trigger touch_updated_at before update on storage.objects
  for each row execute function storage.touch_updated_at();

grant usage on schema storage to anon, authenticated, service_role;
-- The server's login role plans a realtime binding's filter against the table's row type
-- before it switches roles (realtime.check_binding): name lookup only, no table privilege.
grant usage on schema storage to authenticator;
grant select, insert, update, delete on storage.buckets, storage.objects
  to anon, authenticated, service_role;
grant all on storage.resumable_uploads to service_role;
grant execute on function storage.foldername(text), storage.filename(text), storage.extension(text),
  storage.search(text, text, integer, integer, integer, text, text, text)
  to anon, authenticated, service_role;
