-- pgTAP: 20 connections refresh one token at the same moment.  The fixtures
-- must be committed for other connections to see them, so they are made
-- through a dblink connection and removed at the end.
begin;
select plan(4);

create extension dblink schema extensions;
select extensions.dblink_connect('setup', format('host=%s port=%s dbname=%s user=%s',
  split_part(current_setting('unix_socket_directories'), ',', 1), current_setting('port'),
  current_database(), current_user));
select user_id as racer_id from extensions.dblink('setup',
  $$select user_id from auth.sign_up('racer-' || gen_random_uuid() || '@example.org', 'racer pw', '{}', 10, true)$$)
  as t(user_id uuid) \gset
select session_id as racer_session, refresh_token as racer_token from extensions.dblink('setup',
  format('select session_id, refresh_token from auth.open_session(%L)', :'racer_id'))
  as t(session_id uuid, refresh_token text) \gset

-- Hold the session row so that all 20 refreshes are waiting when it is released.
select extensions.dblink_exec('setup', 'begin');
select * from extensions.dblink('setup',
  format('select 1 from auth.sessions where id = %L for update', :'racer_session')) as t(one int);
select extensions.dblink_connect('racer' || i, format('host=%s port=%s dbname=%s user=%s',
         split_part(current_setting('unix_socket_directories'), ',', 1), current_setting('port'),
         current_database(), current_user)),
       extensions.dblink_send_query('racer' || i,
         format('select refresh_token, error from auth.rotate_refresh_token(%L, 10)', :'racer_token'))
  from generate_series(1, 20) i;
select extensions.dblink_exec('setup', 'commit');

create temporary table answers as
  select r.* from generate_series(1, 20) i,
                  lateral extensions.dblink_get_result('racer' || i) as r(refresh_token text, error text);
select extensions.dblink_disconnect('racer' || i) from generate_series(1, 20) i;

select is((select count(*)::int from answers where error is null), 20, 'all 20 concurrent refreshes succeed');
select is((select count(distinct refresh_token)::int from answers), 1, 'and all get the same successor');
select is((select live from extensions.dblink('setup',
             format('select count(*)::int from auth.refresh_tokens where session_id = %L and not revoked', :'racer_session'))
             as t(live int)), 1, 'the session has exactly one live token');
select is((select n from extensions.dblink('setup',
             format('select count(*)::int from auth.refresh_tokens where session_id = %L', :'racer_session'))
             as t(n int)), 2, 'one rotation happened: the first token and its one child');

select * from extensions.dblink('setup', format('select auth.delete_user(%L)', :'racer_id')) as t(deleted boolean);
select extensions.dblink_exec('setup',
  format($$delete from audit.events where actor_id = %L or details ->> 'user_id' = %L$$, :'racer_id', :'racer_id'));
select extensions.dblink_disconnect('setup');

select * from finish();
rollback;
