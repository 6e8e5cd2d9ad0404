-- pgTAP: storage's SQL surface: Supabase's path helpers, listing one level under RLS, the
-- bucket audit trigger, and the privileges the API roles have on the storage tables.
begin;
select plan(14);

select is(storage.foldername('a/b/c.png'), array['a', 'b'], 'foldername: every folder of the path');
select is(storage.foldername('c.png'), '{}'::text[], 'foldername: none at the root');
select is(storage.filename('a/b/c.png'), 'c.png', 'filename: the last segment');
select is(storage.extension('a/b/c.tar.gz'), 'gz', 'extension: after the last dot');
select is(storage.extension('a/b/README'), '', 'extension: empty without a dot');

insert into storage.buckets (id, name) values ('t', 't');
insert into storage.objects (bucket_id, name, owner_id, version) values
  ('t', '00000000-0000-0000-0000-00000000000a/x.txt', '00000000-0000-0000-0000-00000000000a', 'v1'),
  ('t', '00000000-0000-0000-0000-00000000000a/sub/y.txt', '00000000-0000-0000-0000-00000000000a', 'v2'),
  ('t', '00000000-0000-0000-0000-00000000000b/z.txt', '00000000-0000-0000-0000-00000000000b', 'v3'),
  ('t', 'top_level.txt', null, 'v4');

select results_eq(
  $$select name, id is null from storage.search('', 't')$$,
  $$values ('00000000-0000-0000-0000-00000000000a', true), ('00000000-0000-0000-0000-00000000000b', true),
           ('top_level.txt', false)$$,
  'search lists folders first (id null), then objects, one level deep');
select results_eq(
  $$select name from storage.search('00000000-0000-0000-0000-00000000000a/', 't', 100, 2)$$,
  $$values ('sub'), ('x.txt')$$,
  'search under a prefix names entries relative to it');
select is_empty(
  $$select * from storage.search('', 't', 100, 1, 0, 'top%')$$,
  'LIKE wildcards in a search are literal');

create policy own on storage.objects for select to authenticated
  using ((storage.foldername(name))[1] = auth.uid()::text);
select set_config('role', 'authenticated', true),
       set_config('request.jwt.claims', '{"sub": "00000000-0000-0000-0000-00000000000a", "role": "authenticated"}', true);
select results_eq(
  $$select name from storage.search('', 't')$$,
  $$values ('00000000-0000-0000-0000-00000000000a')$$,
  'search runs as the caller: RLS hides other folders');
select throws_ok(
  $$insert into storage.objects (bucket_id, name) values ('t', 'forged.txt')$$,
  '42501', null, 'no insert policy: a user cannot add a row');
select is_empty($$select * from storage.buckets$$, 'no bucket policy: a user sees no bucket');
select throws_ok($$select * from storage.resumable_uploads$$, '42501', null,
  'resumable uploads are the server''s alone');

select set_config('role', 'service_role', true),
       set_config('request.jwt.claims', '{"role": "service_role"}', true);
update storage.buckets set public = true where id = 't';
reset role;
select results_eq(
  $$select event, details->>'bucket_id', details->>'role' from audit.events where event like 'storage_bucket%' order by id$$,
  $$values ('storage_bucket_created', 't', null), ('storage_bucket_updated', 't', 'service_role')$$,
  'bucket changes are audited with the role that made them');
select isnt(
  (select updated_at from storage.buckets where id = 't'), null, 'updated_at is kept');

select * from finish();
rollback;
