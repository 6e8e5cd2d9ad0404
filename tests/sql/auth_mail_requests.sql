-- pgTAP: auth.request_mail does the same work for known and unknown addresses (one bcrypt,
-- one audit row) and tells only the server whether a mail goes out.
begin;
select plan(20);
set local track_functions = 'all';

select * from auth.sign_up('known@example.org', 'pw pw pw pw', '{}', 10, false) \gset known_

-- One request: how many bcrypts it cost, and whether it gave a token to mail.
create function pg_temp.request(p_kind text, p_email text, p_create boolean default false,
                                 out bcrypts bigint, out mailed boolean, out created boolean)
  language plpgsql as $$
declare
  before bigint := coalesce(pg_stat_get_xact_function_calls('auth.hash_password(text,integer)'::regprocedure), 0);
  r record;
begin
  select * into r from auth.request_mail(p_kind, p_email, case when p_kind = 'signup' then 'pw pw pw pw' end,
                                         '{}', p_create, 10, '1 hour', '192.0.2.5');
  bcrypts := coalesce(pg_stat_get_xact_function_calls('auth.hash_password(text,integer)'::regprocedure), 0) - before;
  mailed := r.token is not null;
  created := r.created;
end
$$;

select results_eq($$select bcrypts, mailed from pg_temp.request('recovery', 'KNOWN@example.org ')$$,
  $$values (1::bigint, true)$$, 'recovery, known address: one bcrypt, a token to mail');
select results_eq($$select bcrypts, mailed from pg_temp.request('recovery', 'nobody-1@example.org')$$,
  $$values (1::bigint, false)$$, 'recovery, unknown address: one bcrypt too, nothing to mail');
select results_eq($$select bcrypts, mailed from pg_temp.request('magic_link', 'known@example.org')$$,
  $$values (1::bigint, true)$$, 'magic link, known address: one bcrypt');
select results_eq($$select bcrypts, mailed, created from pg_temp.request('magic_link', 'new-1@example.org', true)$$,
  $$values (1::bigint, true, true)$$, 'magic link creating an account: one bcrypt (its password)');
select results_eq($$select bcrypts, mailed, created from pg_temp.request('magic_link', 'nobody-2@example.org', false)$$,
  $$values (1::bigint, false, false)$$, 'magic link without creating: one bcrypt, no account, nothing to mail');
select is((select count(*)::int from auth.users where email = 'nobody-2@example.org'), 0, 'and no account');
select results_eq($$select bcrypts, mailed from pg_temp.request('confirmation', 'known@example.org')$$,
  $$values (1::bigint, true)$$, 'resend confirmation to an unconfirmed address: one bcrypt');
select results_eq($$select bcrypts, mailed from pg_temp.request('confirmation', 'nobody-3@example.org')$$,
  $$values (1::bigint, false)$$, 'resend to an unknown address: one bcrypt');
select results_eq($$select bcrypts, mailed from pg_temp.request('email_change', 'known@example.org')$$,
  $$values (1::bigint, false)$$, 'resend email change with none pending: one bcrypt, nothing to mail');
select results_eq($$select bcrypts, mailed, created from pg_temp.request('signup', 'known@example.org')$$,
  $$values (1::bigint, false, false)$$, 'signup with a taken address: one bcrypt, nothing created or mailed');
select results_eq($$select bcrypts, mailed, created from pg_temp.request('signup', 'new-2@example.org')$$,
  $$values (1::bigint, true, true)$$, 'signup with a new address: one bcrypt, a confirmation to mail');

select is((select count(*)::int from audit.events where event = 'mail_requested'), 10,
  'every request writes one mail_requested audit row');
select is((select count(*)::int from audit.events where event = 'mail_requested'
            and (details::text like '%@%' or details::text like '%known%')), 0, 'without the address');
update auth.users set email_confirmed_at = now() where id = :'known_user_id';
select is((select mailed from pg_temp.request('confirmation', 'known@example.org')), false,
  'a confirmed address gets no confirmation again');

-- PKCE: a bad challenge is refused before the address is looked up, the same for everyone.
select throws_ok($$select auth.request_mail('recovery', 'known@example.org', null, '{}', false, 10, '1 hour', null,
                                            'short', 's256')$$, '22023', null, 'a bad challenge: refused for a known address');
select throws_ok($$select auth.request_mail('recovery', 'nobody-4@example.org', null, '{}', false, 10, '1 hour', null,
                                            'short', 's256')$$, '22023', null, 'and for an unknown one alike');
select is((select count(*)::int from auth.flow_state fs
            join auth.users u on u.id = fs.user_id where u.email = 'known@example.org'), 0, 'no flow yet');
select isnt((select token from auth.request_mail('recovery', 'known@example.org', null, '{}', false, 10, '1 hour', null,
                                                 repeat('a', 43), 'S256')), null, 'a good challenge: a token');
select is((select count(*)::int from auth.flow_state fs
            join auth.users u on u.id = fs.user_id where u.email = 'known@example.org'), 1, 'tied to a new flow');

select ok(has_function_privilege('service_role',
            'auth.request_mail(text, text, text, jsonb, boolean, integer, interval, inet, text, text)', 'execute')
          and not has_function_privilege('anon',
            'auth.request_mail(text, text, text, jsonb, boolean, integer, interval, inet, text, text)', 'execute'),
  'service_role may call it, anon may not');

select * from finish();
rollback;
