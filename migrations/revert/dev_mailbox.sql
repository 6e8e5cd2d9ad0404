-- Revert fluxbase:dev_mailbox from pg
--
-- The functions of sql/50_dev_mailbox.sql live in the schema and go with it.

BEGIN;

drop schema dev_mailbox cascade;

COMMIT;
