-- Deploy fluxbase:realtime_truncate_relay to pg
-- requires: realtime_log
--
-- Two additions to realtime:
-- * the change log also records TRUNCATE (a statement-level trigger writes one
--   row with no record: a truncate reveals no row data);
-- * realtime.relay carries broadcast and presence messages too large for a
--   NOTIFY payload (under 8000 bytes): the message is stored here and only its
--   id is sent, every replica reads it by id (sql/41_realtime_relay.sql).
--   Rows live seconds; no API role has any privilege on the table.

BEGIN;

alter table realtime.log drop constraint log_type_is_a_change;
alter table realtime.log add constraint log_type_is_a_change
  check (type in ('INSERT', 'UPDATE', 'DELETE', 'TRUNCATE'));

create table realtime.relay (
  id bigserial primary key,
  message text not null,
  created_at timestamptz not null default pg_catalog.now()
);
create index relay_created_at on realtime.relay (created_at);
revoke all on realtime.relay from public;

COMMIT;
