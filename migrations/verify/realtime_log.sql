-- Verify fluxbase:realtime_log on pg

BEGIN;

select id, xid, table_oid, schema_name, table_name, type, record, old_record, commit_timestamp
  from realtime.log where false;

ROLLBACK;
