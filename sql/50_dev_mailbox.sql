-- The local development mailbox (migrations/dev_mailbox): what the server may
-- do with it.  Re-applied by every `fluxbase migrate`, so it stays idempotent.
-- Only `authenticator` (the server's login) may deliver or read, through these
-- functions; the API roles, service_role included, get nothing: a mailbox of
-- sign-in links must never be reachable with an API key.

-- Keeps the newest 200 messages: a development mailbox, not an archive.
create or replace function dev_mailbox.deliver(kind text, recipient text, subject text, body text)
  returns bigint
  language plpgsql volatile security definer
  set search_path = ''
  as $$
  declare
    new_id bigint;
  begin
    insert into dev_mailbox.messages (kind, recipient, subject, body)
    values (kind, recipient, subject, body)
    returning id into new_id;
    delete from dev_mailbox.messages where id <= new_id - 200;
    return new_id;
  end;
  $$;

create or replace function dev_mailbox.latest(max_rows integer)
  returns setof dev_mailbox.messages
  language sql stable security definer
  set search_path = ''
  as $$
    select * from dev_mailbox.messages order by id desc limit least(greatest(max_rows, 0), 200)
  $$;

revoke all on all tables in schema dev_mailbox from public, anon, authenticated, service_role;
revoke all on function dev_mailbox.deliver(text, text, text, text), dev_mailbox.latest(integer)
  from public, anon, authenticated, service_role;
grant usage on schema dev_mailbox to authenticator;
grant execute on function dev_mailbox.deliver(text, text, text, text), dev_mailbox.latest(integer)
  to authenticator;
