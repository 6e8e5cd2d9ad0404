-- Deploy fluxbase:audit_trail to pg
-- requires: foundation
--
-- Row-level audit trails: audit.enable_tracking('public.todos') puts a
-- trigger on a table (sql/60_audit_trail.sql) that appends one row here per
-- inserted, updated or deleted row, in the writer's transaction: a request
-- that rolls back leaves nothing.  Each row says who (the caller's user id,
-- role and API key id from `request.jwt.claims`), through which request (the
-- `request.id` setting the server makes, also the X-Request-ID the client got
-- and the request_id of the log lines) and when.
--
-- No API role has any privilege on the table, service_role included: the
-- trail is read through audit.read_record_changes(), which service_role (and
-- the server on behalf of dashboard administrators) may execute, and pruned
-- through audit.prune_record_changes() by each server (audit.retention).

BEGIN;

create table audit.record_changes (
  id bigint generated always as identity primary key,
  at timestamptz not null default pg_catalog.now(),  -- the writing transaction's start
  op text not null constraint record_changes_op_is_a_change
    check (op in ('INSERT', 'UPDATE', 'DELETE', 'TRUNCATE')),
  table_oid oid not null,
  table_schema text not null,
  table_name text not null,
  -- The primary key's columns and values ({"id": 42}); null for TRUNCATE or a table without one.
  record_id jsonb,
  -- INSERT/UPDATE: the new row; with changed_columns_only, an UPDATE's changed columns only.
  record jsonb,
  -- UPDATE/DELETE: the old row; with changed_columns_only, an UPDATE's old values of those columns.
  old_record jsonb,
  actor_id uuid,        -- auth.uid(): the `sub` claim
  actor_role text,      -- the claims' role, else the database role that wrote (a DBA in psql)
  api_key_id text,      -- the API key the request came with, when it names one
  request_id text,      -- `request.id`: the request's X-Request-ID
  xid pg_catalog.xid8 not null default pg_catalog.pg_current_xact_id()
);

-- Retention deletes by time; readers filter by table or actor and page by id.
create index record_changes_at_idx on audit.record_changes using brin (at);
create index record_changes_table_idx on audit.record_changes (table_oid, id);
create index record_changes_actor_idx on audit.record_changes (actor_id, id) where actor_id is not null;

revoke all on audit.record_changes from public;

COMMIT;
