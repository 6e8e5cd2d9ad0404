-- Verify fluxbase:realtime_truncate_relay on pg

BEGIN;

select id, message, created_at from realtime.relay where false;

ROLLBACK;
