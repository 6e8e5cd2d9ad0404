-- pgTAP: the foundation migration's roles, schemas, extensions and claim helpers.
begin;
select plan(31);

-- Roles and what they may do.
select has_role('anon');
select has_role('authenticated');
select has_role('service_role');
select has_role('authenticator');
select ok((select rolcanlogin from pg_roles where rolname = 'authenticator'), 'authenticator can log in');
select ok(not (select rolcanlogin from pg_roles where rolname = 'anon'), 'anon cannot log in');
select ok((select rolbypassrls from pg_roles where rolname = 'service_role'), 'service_role bypasses RLS');
select ok(not (select rolbypassrls from pg_roles where rolname = 'authenticated'), 'authenticated does not bypass RLS');
select ok(not (select rolsuper or rolcreaterole or rolcreatedb from pg_roles where rolname = 'authenticator'),
  'authenticator has no administrative attribute');
select ok(pg_has_role('authenticator', 'anon', 'member'), 'authenticator can become anon');
select ok(pg_has_role('authenticator', 'authenticated', 'member'), 'authenticator can become authenticated');
select ok(pg_has_role('authenticator', 'service_role', 'member'), 'authenticator can become service_role');
select ok(not pg_has_role('authenticator', 'service_role', 'usage'), 'authenticator does not inherit service_role');
select is((select count(*)::int from pg_class c join pg_roles r on r.oid = c.relowner
            where r.rolname in ('authenticator', 'anon', 'authenticated')), 0,
  'the API roles own no relation');

-- Internal schemas exist and the API roles cannot create anything in them.
select has_schema(s) from unnest(array['auth', 'dashboard', 'storage', 'realtime', 'audit', 'extensions']) s;
select ok(not has_schema_privilege('anon', 'dashboard', 'usage'), 'anon cannot enter dashboard');
select ok(not has_schema_privilege('authenticated', 'auth', 'create'), 'authenticated cannot create in auth');

-- Extensions, kept out of the exposed schema.
select has_extension('extensions', 'uuid-ossp', 'uuid-ossp is installed in schema extensions');
select has_extension('extensions', 'pgcrypto', 'pgcrypto is installed in schema extensions');
select has_extension('extensions', 'pg_trgm', 'pg_trgm is installed in schema extensions');

-- The claim helpers read request.jwt.claims.
select set_config('request.jwt.claims',
  '{"sub": "5b6f3a62-6d1c-4a8b-9a7e-0c1d2e3f4a5b", "role": "authenticated", "email": "ada@example.org"}', true);
select is(auth.uid(), '5b6f3a62-6d1c-4a8b-9a7e-0c1d2e3f4a5b'::uuid, 'auth.uid() is the sub claim');
select is(auth.role(), 'authenticated', 'auth.role() is the role claim');
select is(auth.email(), 'ada@example.org', 'auth.email() is the email claim');
select is(auth.jwt() ->> 'sub', '5b6f3a62-6d1c-4a8b-9a7e-0c1d2e3f4a5b', 'auth.jwt() holds every claim');
select set_config('request.jwt.claims', '', true);
select is(auth.uid(), null, 'no claims: auth.uid() is null');
select is(auth.jwt(), '{}'::jsonb, 'no claims: auth.jwt() is empty');

select * from finish();
rollback;
