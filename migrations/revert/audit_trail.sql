-- Revert fluxbase:audit_trail from pg
--
-- The functions of sql/60_audit_trail.sql work on this table, so they go too;
-- dropping the trigger functions with cascade removes the triggers that
-- audit.enable_tracking() put on application tables.

BEGIN;

drop function if exists audit.record_change() cascade;
drop function if exists audit.record_truncate() cascade;
drop function if exists audit.enable_tracking(regclass, boolean);
drop function if exists audit.disable_tracking(regclass);
drop function if exists audit.tracked_tables();
drop function if exists audit.read_record_changes(text, text, uuid, text, text, timestamptz, timestamptz, bigint, integer);
drop function if exists audit.prune_record_changes(interval);
drop table audit.record_changes;
revoke usage on schema audit from service_role, authenticator;

COMMIT;
