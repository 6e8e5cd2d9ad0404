-- Deploy fluxbase:realtime_log to pg
-- requires: foundation
--
-- The change log of realtime: the capture trigger (sql/40_realtime.sql)
-- appends one row per changed row and NOTIFYs only the new id, so a row of any
-- width never makes pg_notify fail the writer's transaction.  Every server
-- process reads this table by cursor after each notification and after each
-- reconnect of its LISTEN connection, so a dropped listener loses nothing.
--
-- Readers order by the writer's transaction id (xid8), not only by `id`: ids
-- are drawn before commit, so a smaller id can become visible after a larger
-- one.  Rows whose transaction is older than the reader's snapshot xmin are
-- final, which is what makes a cursor safe (see realtime.read_changes).
--
-- No API role has any privilege here: the server reads through SECURITY
-- DEFINER functions that only `authenticator` may execute.

BEGIN;

create table realtime.log (
  id bigserial primary key,
  xid pg_catalog.xid8 not null default pg_catalog.pg_current_xact_id(),
  table_oid oid not null,
  schema_name text not null,
  table_name text not null,
  type text not null constraint log_type_is_a_change check (type in ('INSERT', 'UPDATE', 'DELETE')),
  -- The new row (INSERT, UPDATE).
  record jsonb,
  -- The old row (UPDATE, DELETE), whole: the server needs it to evaluate
  -- RLS policies for a DELETE, and trims it before sending (primary key only
  -- unless the table has REPLICA IDENTITY FULL and no RLS).
  old_record jsonb,
  commit_timestamp timestamptz not null default pg_catalog.now()
);

create index log_xid_id on realtime.log (xid, id);
create index log_commit_timestamp on realtime.log (commit_timestamp);

revoke all on realtime.log from public;

COMMIT;
