-- Verify fluxbase:audit_trail on pg

BEGIN;

select id, at, op, table_oid, table_schema, table_name, record_id, record, old_record,
       actor_id, actor_role, api_key_id, request_id, xid
  from audit.record_changes where false;

ROLLBACK;
