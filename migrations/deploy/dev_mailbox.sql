-- Deploy fluxbase:dev_mailbox to pg
-- requires: foundation
--
-- The local development mailbox: with no SMTP server configured (and the
-- mailbox enabled, as it is with the embedded database) auth mail is kept
-- here and shown at /_dev/mailbox and by `fluxbase mail`, like Supabase's
-- local Inbucket.  Mails carry sign-in links, so the schema is internal: no
-- API role has any privilege on it, the data API never exposes it, and the
-- server reaches it only through the SECURITY DEFINER functions of
-- sql/50_dev_mailbox.sql that `authenticator` alone may execute.

BEGIN;

create schema dev_mailbox;
revoke all on schema dev_mailbox from public;

create table dev_mailbox.messages (
  id bigint generated always as identity primary key,
  sent_at timestamptz not null default pg_catalog.now(),
  kind text not null,
  recipient text not null,
  subject text not null,
  body text not null
);

COMMIT;
