-- Verify fluxbase:storage_schema on pg

BEGIN;

select id, name, owner, owner_id, public, avif_autodetection, file_size_limit, allowed_mime_types,
       type, created_at, updated_at
  from storage.buckets where false;
select id, bucket_id, name, owner, owner_id, metadata, user_metadata, path_tokens, version,
       created_at, updated_at, last_accessed_at
  from storage.objects where false;
select id, bucket_id, name, upload_length, role, owner_id, expires_at
  from storage.resumable_uploads where false;

ROLLBACK;
