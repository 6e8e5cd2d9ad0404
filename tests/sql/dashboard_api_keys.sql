-- pgTAP: API keys: stored as digests, scopes and roles checked, revoke/regenerate, NOTIFY, privileges.
begin;
select plan(17);

select * from dashboard.create_user('keys@example.com', 'KeysPassword123!', '', 'dashboard_admin', 10) \gset u_
select * from dashboard.create_api_key('ci', array['rest:write', 'rest:read', 'rest:read'], null, null, null, :'u_user_id') \gset k_
select matches(:'k_key'::text, '^fbk_[A-Za-z0-9_-]{43}$', 'a key is fbk_ and 32 random bytes');
select is((select count(*)::int from dashboard.api_keys where key_hash = :'k_key'), 0, 'the key is not stored');
select is((select key_hash from dashboard.api_keys where id = :'k_id'), auth.token_hash(:'k_key'), 'its sha256 is');
select is((select key_prefix from dashboard.api_keys where id = :'k_id'), substr(:'k_key', 1, 12), 'and its first characters');
select is((select scopes from dashboard.api_keys where id = :'k_id'), array['rest:read', 'rest:write'], 'scopes, once each');
select is((select role || '/' || rate_limit_per_minute from dashboard.api_keys where id = :'k_id'), 'anon/1000',
  'anon and 1,000 a minute by default');
select throws_ok($$select dashboard.create_api_key('x', array['root'], 'anon', 10, null, null)$$, '23514', null,
  'an unknown scope is refused');
select throws_ok($$select dashboard.create_api_key('x', array['rest:read'], 'postgres', 10, null, null)$$, '23514', null,
  'a role other than anon or service_role is refused');
select throws_ok($$select dashboard.create_api_key('x', array['rest:read'], 'anon', 10, now() - interval '1 day', null)$$,
  '22023', null, 'an expiry in the past is refused');
select is((select count(*)::int from dashboard.active_api_keys() where id = :'k_id'), 1, 'a new key is live');
select ok(not (dashboard.api_key_json(:'k_id') ? 'key_hash'), 'the key as the API shows it has no digest');

select dashboard.regenerate_api_key(:'k_id', :'u_user_id') as new_key \gset
select isnt(:'new_key'::text, :'k_key'::text, 'regenerating makes a new key');
select is((select key_hash from dashboard.active_api_keys() where id = :'k_id'), auth.token_hash(:'new_key'),
  'and only the new one is live');
select ok(dashboard.revoke_api_key(:'k_id', :'u_user_id'), 'a key is revoked');
select is((select count(*)::int from dashboard.active_api_keys() where id = :'k_id'), 0, 'and is no longer live');
select is((select count(*)::int from audit.events where event in ('dashboard.api_key_created', 'dashboard.api_key_regenerated',
  'dashboard.api_key_revoked') and details ->> 'api_key_id' is null and details ->> 'resource_id' = :'k_id'), 3,
  'each operation is audited');

-- No API role reads the schema or calls the private helpers.
set local role service_role;
select throws_ok($$select * from dashboard.api_keys$$, '42501', null, 'service_role cannot read the keys table');
reset role;

select * from finish();
rollback;
