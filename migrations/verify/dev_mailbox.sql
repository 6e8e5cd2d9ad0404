-- Verify fluxbase:dev_mailbox on pg

BEGIN;

select id, sent_at, kind, recipient, subject, body from dev_mailbox.messages where false;

ROLLBACK;
