-- Helpers for an application's pgTAP policy tests: act as a caller inside a test.
--
-- `fluxbase test` installs these, with pgTAP, only in the throwaway copy the
-- tests run against, never in a real database; the `tests` schema is internal
-- (the data API can never expose it).  Each helper sets what the server sets
-- at the start of a request's transaction: the role and `request.jwt.claims`,
-- transaction-locally, so a test inside `begin; ... rollback;` leaves nothing.
-- Switching back and forth works because the session user (the database
-- owner) may become any of the three API roles.

create schema tests;
grant usage on schema tests to anon, authenticated, service_role;

-- A confirmed email user, as sign-up plus confirmation would leave it.
create function tests.create_user(email text, user_metadata jsonb default '{}') returns uuid
  language plpgsql
  security definer
  set search_path = ''
  as $$
  declare
    new_id uuid;
  begin
    insert into auth.users (email, email_confirmed_at, raw_app_meta_data, raw_user_meta_data)
    values (email, pg_catalog.now(), '{"provider": "email", "providers": ["email"]}', user_metadata)
    returning id into new_id;
    insert into auth.identities (provider_id, user_id, identity_data, provider)
    values (new_id::text, new_id, pg_catalog.jsonb_build_object('sub', new_id::text, 'email', email), 'email');
    return new_id;
  end
  $$;

-- The claims of a user's access token (auth/tokens.py's shape), by id; the
-- caller may be any API role, so the lookup runs as the owner.
create function tests.user_claims(user_id uuid) returns jsonb
  language plpgsql stable
  security definer
  set search_path = ''
  as $$
  declare
    claims jsonb;
  begin
    select pg_catalog.jsonb_build_object(
             'sub', u.id::text, 'role', 'authenticated', 'aud', 'authenticated', 'email', u.email,
             'phone', coalesce(u.phone, ''), 'app_metadata', u.raw_app_meta_data,
             'user_metadata', u.raw_user_meta_data, 'is_anonymous', u.is_anonymous,
             'iat', pg_catalog.floor(extract(epoch from pg_catalog.now()))::bigint,
             'exp', pg_catalog.floor(extract(epoch from pg_catalog.now()))::bigint + 3600)
      into claims
      from auth.users u
     where u.id = user_id and u.deleted_at is null;
    if claims is null then
      raise exception 'tests: no user with id %', user_id
        using hint = 'create one first with tests.create_user(email)';
    end if;
    return claims;
  end
  $$;

create function tests.user_id(user_email text) returns uuid
  language plpgsql stable
  security definer
  set search_path = ''
  as $$
  declare
    found uuid;
  begin
    select u.id into found from auth.users u
     where pg_catalog.lower(u.email) = pg_catalog.lower(user_email) and u.deleted_at is null;
    if found is null then
      raise exception 'tests: no user with email %', user_email
        using hint = 'create one first with tests.create_user(email)';
    end if;
    return found;
  end
  $$;

create function tests.authenticate_as(user_id uuid) returns void
  language plpgsql
  as $$
  declare
    claims jsonb := tests.user_claims(user_id);
  begin
    perform pg_catalog.set_config('role', 'authenticated', true);
    perform pg_catalog.set_config('request.jwt.claims', claims::text, true);
  end
  $$;

-- By email, or by an id written as text.
create function tests.authenticate_as(identifier text) returns void
  language plpgsql
  as $$
  begin
    if identifier ~* '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$' then
      perform tests.authenticate_as(identifier::uuid);
    else
      perform tests.authenticate_as(tests.user_id(identifier));
    end if;
  end
  $$;

create function tests.as_anon() returns void
  language plpgsql
  as $$
  begin
    perform pg_catalog.set_config('role', 'anon', true);
    perform pg_catalog.set_config('request.jwt.claims', '{"role": "anon"}', true);
  end
  $$;

create function tests.as_service_role() returns void
  language plpgsql
  as $$
  begin
    perform pg_catalog.set_config('role', 'service_role', true);
    perform pg_catalog.set_config('request.jwt.claims', '{"role": "service_role"}', true);
  end
  $$;

-- Back to the owner (who bypasses RLS), e.g. to set up rows between checks.
create function tests.clear_authentication() returns void
  language plpgsql
  as $$
  begin
    perform pg_catalog.set_config('role', 'none', true);
    perform pg_catalog.set_config('request.jwt.claims', '', true);
  end
  $$;

revoke all on all functions in schema tests from public;
grant execute on all functions in schema tests to anon, authenticated, service_role;
